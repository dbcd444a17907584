//! Search: the query embedded, each retriever run in one snapshot, their rankings fused, the chunks' details read.

use std::collections::HashMap;

use hearth_api::concepts::ConceptChip;
use hearth_api::search::{
    Hit, MAX_K, MAX_QUERY_CHARS, Retriever, SearchFilter as ApiFilter, SearchMode, SearchRequest,
};

use super::{Library, LibraryError, storable, storable_json};
use crate::fusion;
use crate::metrics::ModeLabel;
use crate::store::search::{self as retrieval, SearchFilter};
use crate::store::spaces::Space;
use crate::store::{StoreError, graph};

impl Library {
    /// The `k` best chunks for the query, by the request's mode.
    pub async fn search(&self, request: &SearchRequest) -> Result<Vec<Hit>, LibraryError> {
        let started = std::time::Instant::now();
        let hits = self.search_unmeasured(request).await?;
        self.metrics
            .search_seconds
            .get_or_create(&ModeLabel {
                mode: request.mode.label(),
            })
            .observe(started.elapsed().as_secs_f64());
        Ok(hits)
    }

    async fn search_unmeasured(&self, request: &SearchRequest) -> Result<Vec<Hit>, LibraryError> {
        self.pool()?;
        validate_search(request)?;
        // Fusion needs more than k from each retriever to re-rank well.
        let depth = match request.mode {
            SearchMode::Hybrid => (request.k * 4).max(40),
            _ => request.k,
        } as i64;
        // The query is embedded before the snapshot opens, so no transaction waits on the model.
        let query_vector = match request.mode {
            SearchMode::Keyword => None,
            SearchMode::Vector | SearchMode::Hybrid => Some(self.embed_query(&request.query).await?),
        };
        let filter = self.with_concept(request.filter.as_ref()).await?;
        let mut snapshot = retrieval::snapshot(&self.pool).await?;
        let (vector, keyword) = match (&query_vector, request.mode) {
            (Some((space, query)), SearchMode::Hybrid) => {
                retrieval::both(
                    &self.pool,
                    &mut snapshot,
                    space,
                    query,
                    &request.query,
                    &filter,
                    depth,
                )
                .await?
            }
            (Some((space, query)), _) => (
                retrieval::vector(&mut snapshot, space, query, &filter, depth).await?,
                Vec::new(),
            ),
            (None, _) => (
                Vec::new(),
                retrieval::keyword(
                    &mut snapshot,
                    &request.query,
                    &filter,
                    depth,
                    retrieval::KEYWORD_CANDIDATES,
                )
                .await?,
            ),
        };
        let order = match request.mode {
            SearchMode::Hybrid => fusion::fuse(fusion::HYBRID, &vector, &keyword, request.k),
            SearchMode::Vector => fusion::single(Retriever::Vector, vector, request.k),
            SearchMode::Keyword => fusion::single(Retriever::Keyword, keyword, request.k),
        };
        let ids: Vec<i64> = order.iter().map(|hit| hit.chunk_id).collect();
        let details = retrieval::details(&mut snapshot, &ids).await?;
        snapshot.commit().await.map_err(StoreError::from)?;
        let mut hits = with_details(order, details);
        self.add_chips(&mut hits).await?;
        Ok(hits)
    }

    /// The request's filter, a concept turned into the documents that mention it.
    async fn with_concept(&self, filter: Option<&ApiFilter>) -> Result<SearchFilter, LibraryError> {
        let Some(filter) = filter else {
            return Ok(SearchFilter::default());
        };
        let mut resolved = SearchFilter::from(filter);
        if let Some(concept) = filter.concept {
            if !graph::exists(&self.pool, concept).await? {
                return Err(LibraryError::ConceptNotFound(concept));
            }
            let mentioning = graph::documents_mentioning(&self.pool, concept).await?;
            resolved.document_ids = Some(match resolved.document_ids {
                Some(ids) => ids.into_iter().filter(|id| mentioning.contains(id)).collect(),
                None => mentioning,
            });
        }
        Ok(resolved)
    }

    /// The concepts each hit's chunk mentions.
    async fn add_chips(&self, hits: &mut [Hit]) -> Result<(), LibraryError> {
        let ids: Vec<i64> = hits.iter().map(|hit| hit.chunk_id).collect();
        for (chunk, id, name) in graph::chips(&self.pool, &ids).await? {
            if let Some(hit) = hits.iter_mut().find(|hit| hit.chunk_id == chunk) {
                hit.concepts.push(ConceptChip { id, name });
            }
        }
        Ok(())
    }

    /// The query's vector in the space that is searched.
    async fn embed_query(&self, query: &str) -> Result<(Space, Vec<f32>), LibraryError> {
        let models = self.models().ok_or(LibraryError::ModelNotReady)?;
        if models.spaces.switching() && models.previous.is_none() {
            // The searched space's model could not be loaded: its vectors cannot be queried.
            return Err(LibraryError::ModelNotReady);
        }
        let vector = self.embed_query_text(models.query_model(), query).await?;
        Ok((models.spaces.active.clone(), vector))
    }
}

/// Refuses a search that cannot be answered, saying what to change.
fn validate_search(request: &SearchRequest) -> Result<(), LibraryError> {
    if request.query.trim().is_empty() {
        return Err(LibraryError::InvalidQuery(
            "query is empty: say what to look for".into(),
        ));
    }
    let query_chars = request.query.chars().count();
    if query_chars > MAX_QUERY_CHARS {
        return Err(LibraryError::InvalidQuery(format!(
            "query is {query_chars} characters, more than the {MAX_QUERY_CHARS} accepted: search for a \
             shorter phrase"
        )));
    }
    if request.k == 0 || request.k > MAX_K {
        return Err(LibraryError::InvalidQuery(format!(
            "k must be between 1 and {MAX_K}"
        )));
    }
    let metadata = request
        .filter
        .as_ref()
        .and_then(|filter| filter.metadata.as_ref());
    if metadata.is_some_and(|metadata| !metadata.is_object()) {
        return Err(LibraryError::MetadataNotObject);
    }
    storable("query", Some(&request.query))?;
    if let Some(metadata) = metadata {
        storable_json("filter.metadata", metadata)?;
    }
    Ok(())
}

/// The ranked chunks as hits, in rank order.
fn with_details(order: Vec<fusion::Fused>, details: Vec<retrieval::ChunkDetail>) -> Vec<Hit> {
    let mut details: HashMap<i64, retrieval::ChunkDetail> =
        details.into_iter().map(|d| (d.chunk_id, d)).collect();
    order
        .into_iter()
        .filter_map(|hit| {
            // Same snapshot as the ranking, so every ranked chunk has its details.
            let detail = details.remove(&hit.chunk_id)?;
            Some(Hit {
                chunk_id: hit.chunk_id,
                document_id: detail.document_id,
                title: detail.title,
                external_id: detail.external_id,
                metadata: detail.metadata,
                text: detail.text,
                span: [detail.char_start, detail.char_end],
                score: hit.score,
                retrievers: hit.retrievers,
                concepts: Vec::new(),
            })
        })
        .collect()
}
