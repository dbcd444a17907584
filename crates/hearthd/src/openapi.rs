//! `GET /openapi.json`: the OpenAPI 3.1 document of every route, built from the handlers' annotations and
//! hearth-api's types, so it cannot describe a body the server does not send.

use axum::Json;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use crate::{capabilities, concepts, documents, http, openai, reasoning};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "hearth",
        description = "A private, local-first knowledge appliance: upload documents, search them by meaning and by \
                       words, and embed text with the model on the box. Errors are `{code, message}` (OpenAI's \
                       envelope on the OpenAI-compatible routes). From another machine, send the appliance's API \
                       token as a bearer token; on loopback none is needed."
    ),
    paths(
        http::healthz,
        http::readyz,
        http::metrics,
        document,
        openai::embeddings,
        openai::models,
        capabilities::capabilities,
        documents::upload,
        documents::list,
        documents::get_one,
        documents::content,
        documents::delete,
        documents::search,
        reasoning::get_settings,
        reasoning::put_settings,
        reasoning::delete_settings,
        reasoning::test_settings,
        reasoning::answer,
        reasoning::chat_completions,
        concepts::list,
        concepts::extraction,
        concepts::detail,
    ),
    modifiers(&BearerToken),
    security(("bearer" = [])),
)]
pub struct ApiDoc;

/// The appliance's API token, sent as `Authorization: Bearer …` (not needed on loopback).
struct BearerToken;

impl Modify for BearerToken {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

/// This document.
#[utoipa::path(
    get, path = "/openapi.json", tag = "status",
    responses((status = 200, description = "The OpenAPI 3.1 document of this API", content_type = "application/json")),
)]
pub async fn document() -> Json<utoipa::openapi::OpenApi> {
    Json(ApiDoc::openapi())
}
