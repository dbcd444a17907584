//! The official `openai` Python client against the real hearthd: what every RAG tool will do.

use hearth_testkit::{TestHearthd, TestPostgres};

mod common;

const SCRIPT: &str = r#"
import base64, json, struct, sys
import openai
from openai import OpenAI

client = OpenAI(base_url=sys.argv[1] + "/v1", api_key="not-needed-on-loopback", max_retries=0)
model = "sentence-transformers/all-MiniLM-L6-v2"

one = client.embeddings.create(model=model, input="The cat sat on the mat.")
texts = ["The cat sat on the mat.", "A dog barked.", "Stocks fell on Monday."]
floats = client.embeddings.create(model=model, input=texts, encoding_format="float")
# Without encoding_format the client asks for base64 and decodes it itself.
implicit = client.embeddings.create(model=model, input=texts)
raw = client.embeddings.with_raw_response.create(model=model, input=texts, encoding_format="base64")
raw_body = json.loads(raw.text)
decoded = [list(struct.unpack(f"<{len(base64.b64decode(d['embedding'])) // 4}f", base64.b64decode(d["embedding"])))
           for d in raw_body["data"]]
try:
    client.embeddings.create(model="text-embedding-3-small", input="x")
    not_found = None
except openai.NotFoundError as error:
    not_found = {"status": error.status_code, "code": error.code}

print(json.dumps({
    "one_dims": len(one.data[0].embedding),
    "one_usage": one.usage.prompt_tokens,
    "batch_indices": [d.index for d in floats.data],
    "model": floats.model,
    "float_vs_implicit": max(abs(a - b) for f, i in zip(floats.data, implicit.data)
                             for a, b in zip(f.embedding, i.embedding)),
    "float_vs_base64": max(abs(a - b) for f, d in zip(floats.data, decoded) for a, b in zip(f.embedding, d)),
    "not_found": not_found,
}))
"#;

#[tokio::test]
async fn the_official_openai_client_embeds_a_string_and_a_batch() {
    let postgres = TestPostgres::start().expect("postgres");
    let database_url = postgres.create_database().expect("database");
    let hearthd =
        TestHearthd::start(env!("CARGO_BIN_EXE_hearthd").as_ref(), &database_url, &[]).expect("hearthd");
    hearthd.serving("/v1/models").await;

    let report = common::run_python(SCRIPT, vec![hearthd.url.clone()], || hearthd.log_text()).await;
    assert_eq!(report["one_dims"], 384, "{report}");
    assert!(report["one_usage"].as_u64().is_some_and(|t| t > 2), "{report}");
    assert_eq!(report["batch_indices"], serde_json::json!([0, 1, 2]), "{report}");
    assert_eq!(report["model"], "sentence-transformers/all-MiniLM-L6-v2");
    assert_eq!(
        report["float_vs_implicit"], 0.0,
        "client-side base64 decoding differs: {report}"
    );
    assert_eq!(report["float_vs_base64"], 0.0, "{report}");
    assert_eq!(report["not_found"]["status"], 404, "{report}");
    assert_eq!(report["not_found"]["code"], "model_not_found", "{report}");
}
