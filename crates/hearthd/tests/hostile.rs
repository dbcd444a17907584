//! Hostile input against the real hearthd: files built to crash, hang or exhaust a parser, requests built to break
//! the HTTP layer. hearthd must stay up (same process, still answering) and say plainly what was wrong.

use std::io::Write as _;
use std::path::Path;
use std::time::{Duration, Instant};

use hearth_testkit::{TestHearthd, TestPostgres};
use reqwest::StatusCode;
use serde_json::Value;

mod common;
use common::{pdf, stream};

const HEARTHD: &str = env!("CARGO_BIN_EXE_hearthd");

fn catalog_and_pages(kids: &[usize]) -> Vec<Vec<u8>> {
    let kids: Vec<String> = kids.iter().map(|k| format!("{k} 0 R")).collect();
    vec![
        b"<< /Type /Catalog /Pages 2 0 R >>".to_vec(),
        format!(
            "<< /Type /Pages /Kids [{}] /Count {} >>",
            kids.join(" "),
            kids.len()
        )
        .into_bytes(),
    ]
}

/// A page whose form XObject draws itself: unbounded recursion in a parser that follows it.
fn self_drawing_form() -> Vec<u8> {
    let mut objects = catalog_and_pages(&[3]);
    objects.push(
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R \
          /Resources << /XObject << /Fm1 5 0 R >> >> >>"
            .to_vec(),
    );
    objects.push(stream("", b"/Fm1 Do"));
    objects.push(stream(
        "/Type /XObject /Subtype /Form /BBox [0 0 10 10] /Resources << /XObject << /Fm1 5 0 R >> >>",
        b"/Fm1 Do",
    ));
    pdf(&objects)
}

/// Sixty forms, each drawing the next twice: 2^60 draws.
fn doubling_forms() -> Vec<u8> {
    const FORMS: usize = 60;
    let mut objects = catalog_and_pages(&[3]);
    objects.push(
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R \
          /Resources << /XObject << /F0 5 0 R >> >> >>"
            .to_vec(),
    );
    objects.push(stream("", b"/F0 Do"));
    for form in 0..FORMS {
        let (resources, content) = if form + 1 < FORMS {
            (
                format!("/Resources << /XObject << /F{} {} 0 R >> >>", form + 1, form + 6),
                format!("/F{next} Do /F{next} Do", next = form + 1),
            )
        } else {
            (String::new(), "0 0 m 1 1 l S".to_owned())
        };
        objects.push(stream(
            &format!("/Type /XObject /Subtype /Form /BBox [0 0 10 10] {resources}"),
            content.as_bytes(),
        ));
    }
    pdf(&objects)
}

/// A page whose contents are `streams` flate streams of a MiB of zeros each: small on disk, huge inflated.
fn flate_bomb(streams: usize) -> Vec<u8> {
    let mut encoder = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::best());
    encoder.write_all(&vec![0u8; 1024 * 1024]).expect("compress");
    let zeros = encoder.finish().expect("compress");
    let mut objects = catalog_and_pages(&[3]);
    let contents: Vec<String> = (0..streams).map(|i| format!("{} 0 R", i + 4)).collect();
    objects.push(
        format!(
            "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents [{}] >>",
            contents.join(" ")
        )
        .into_bytes(),
    );
    for _ in 0..streams {
        objects.push(stream("/Filter /FlateDecode", &zeros));
    }
    pdf(&objects)
}

/// `pages` pages, each with a line of text.
fn many_pages(pages: usize) -> Vec<u8> {
    let first_page = 3;
    let kids: Vec<usize> = (0..pages).map(|i| first_page + 2 * i).collect();
    let mut objects = catalog_and_pages(&kids);
    let font = first_page + 2 * pages;
    for page in 0..pages {
        objects.push(
            format!(
                "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents {} 0 R \
                 /Resources << /Font << /F1 {font} 0 R >> >> >>",
                first_page + 2 * page + 1
            )
            .into_bytes(),
        );
        objects.push(stream(
            "",
            format!("BT /F1 12 Tf 72 720 Td (page {page}) Tj ET").as_bytes(),
        ));
    }
    objects.push(b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>".to_vec());
    pdf(&objects)
}

async fn upload(http: &reqwest::Client, hearthd: &TestHearthd, body: Vec<u8>, content_type: &str) -> String {
    let response = http
        .post(format!("{}/v1/documents", hearthd.url))
        .header("content-type", content_type)
        .body(body)
        .send()
        .await
        .expect("upload");
    let status = response.status();
    let body: Value = response.json().await.expect("json");
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    body["id"].as_str().expect("id").to_owned()
}

async fn settled(http: &reqwest::Client, hearthd: &TestHearthd, id: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let document: Value = http
            .get(format!("{}/v1/documents/{id}", hearthd.url))
            .send()
            .await
            .expect("get")
            .json()
            .await
            .expect("json");
        if document["status"] == "ready" || document["status"] == "failed" {
            return document;
        }
        assert!(
            Instant::now() < deadline,
            "never settled: {document}\n{}",
            hearthd.log_text()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn files_built_to_break_the_parser_fail_their_document_plainly_and_hearthd_stays_up() {
    let postgres = TestPostgres::start().expect("postgres");
    let database = postgres.create_database().expect("database");
    let hearthd = TestHearthd::start(
        Path::new(HEARTHD),
        &database,
        &[
            ("HEARTH_INGEST__EXTRACTION__MEMORY_MIB", "256"),
            ("HEARTH_INGEST__EXTRACTION__CPU_SECONDS", "3"),
            ("HEARTH_INGEST__EXTRACTION__TIMEOUT_SECONDS", "30"),
            ("HEARTH_INGEST__EXTRACTION__MAX_PAGES", "40"),
        ],
    )
    .expect("hearthd");
    hearthd.ready().await;
    let pid = hearthd.pid();
    let http = reqwest::Client::new();

    let cases: Vec<(&str, Vec<u8>, &str, &[&str])> = vec![
        (
            "a form that draws itself",
            self_drawing_form(),
            "application/pdf",
            &["the PDF could not be read: the parser crashed on it (it nests too deeply)"],
        ),
        (
            "sixty forms that each draw the next twice",
            doubling_forms(),
            "application/pdf",
            &["the PDF could not be read: it took more than 3 s of CPU time"],
        ),
        (
            "400 MiB of zeros behind 400 KiB of flate",
            flate_bomb(400),
            "application/pdf",
            &["the PDF could not be read: it exceeded the 256 MiB extraction limit"],
        ),
        (
            "more pages than ingest.extraction.max_pages",
            many_pages(41),
            "application/pdf",
            &["the PDF has 41 pages; at most 40 are read"],
        ),
        (
            "HTML nested 200,000 deep",
            "<div>".repeat(200_000).into_bytes(),
            "text/html",
            // Whichever gives first: the stack or the CPU time.
            &[
                "the HTML page could not be read: the parser crashed on it (it nests too deeply)",
                "the HTML page could not be read: it took more than 3 s of CPU time",
            ],
        ),
    ];
    let mut uploaded = Vec::new();
    for (name, body, content_type, expected) in cases {
        uploaded.push((name, upload(&http, &hearthd, body, content_type).await, expected));
    }
    for (name, id, expected) in &uploaded {
        let document = settled(&http, &hearthd, id).await;
        assert_eq!(document["status"], "failed", "{name}: {document}");
        let error = document["error"].as_str().unwrap_or_default();
        assert!(
            expected.iter().any(|reason| error.contains(reason)),
            "{name}: the reason should say {expected:?}, it says: {error}"
        );
    }

    assert_eq!(hearthd.pid(), pid);
    let health = http
        .get(format!("{}/healthz", hearthd.url))
        .send()
        .await
        .expect("healthz");
    assert_eq!(health.status(), StatusCode::OK);
    // A good PDF still goes through the same sandbox.
    let good = upload(
        &http,
        &hearthd,
        common::pdf_with_text("The potter glazes the bowls before the second firing"),
        "application/pdf",
    )
    .await;
    assert_eq!(settled(&http, &hearthd, &good).await["status"], "ready");
    assert!(
        !hearthd.log_text().contains("panicked"),
        "hearthd itself panicked:\n{}",
        hearthd.log_text()
    );
}

/// One raw HTTP/1.1 exchange, for requests a client library will not send (a length that lies, an invented
/// method): the status line's code and the body, read until the server closes or a second passes.
async fn raw_request(hearthd: &TestHearthd, request: &[u8]) -> (u16, String, Duration) {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let address = hearthd.url.trim_start_matches("http://").to_owned();
    let started = Instant::now();
    let mut stream = tokio::net::TcpStream::connect(address).await.expect("connect");
    stream.write_all(request).await.expect("write");
    let mut response = Vec::new();
    let mut buffer = [0u8; 4096];
    while let Ok(Ok(read)) = tokio::time::timeout(Duration::from_secs(1), stream.read(&mut buffer)).await {
        if read == 0 {
            break;
        }
        response.extend_from_slice(&buffer[..read]);
        if response.windows(4).any(|w| w == b"\r\n\r\n") && String::from_utf8_lossy(&response).contains("}") {
            break;
        }
    }
    let text = String::from_utf8_lossy(&response).into_owned();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or(0);
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, body)| body.to_owned())
        .unwrap_or_default();
    (status, body, started.elapsed())
}

#[tokio::test(flavor = "multi_thread")]
async fn hostile_requests_get_a_4xx_that_says_what_to_change() {
    let postgres = TestPostgres::start().expect("postgres");
    let database = postgres.create_database().expect("database");
    let hearthd = TestHearthd::start(Path::new(HEARTHD), &database, &[]).expect("hearthd");
    hearthd.ready().await;
    let pid = hearthd.pid();
    let http = reqwest::Client::new();
    let url = |path: &str| format!("{}{path}", hearthd.url);

    let requests: Vec<(&str, reqwest::RequestBuilder, u16, &str)> = vec![
        (
            "an id that is no UUID",
            http.get(url("/v1/documents/not-a-uuid")),
            400,
            "invalid_request",
        ),
        (
            "a limit that is no number",
            http.get(url("/v1/documents?limit=many")),
            400,
            "invalid_request",
        ),
        (
            "an unknown query parameter",
            http.get(url("/v1/documents?colour=red")),
            400,
            "invalid_request",
        ),
        (
            "a path no route has",
            http.get(url("/v2/everything")),
            404,
            "no_route",
        ),
        (
            "a method the route does not take",
            http.put(url("/v1/search")),
            405,
            "method_not_allowed",
        ),
        (
            "a NUL in a title",
            http.post(url("/v1/documents"))
                .json(&serde_json::json!({"text": "fine text", "title": "a\u{0}b"})),
            422,
            "invalid_text",
        ),
        (
            "a NUL in metadata",
            http.post(url("/v1/documents"))
                .json(&serde_json::json!({"text": "fine text", "metadata": {"k\u{0}": "v"}})),
            422,
            "invalid_text",
        ),
        (
            "a NUL in an external id",
            http.post(url("/v1/documents?external_id=a%00b"))
                .header("content-type", "text/plain")
                .body("fine text"),
            422,
            "invalid_text",
        ),
        (
            "a NUL in a search query",
            http.post(url("/v1/search"))
                .json(&serde_json::json!({"query": "lamp\u{0}"})),
            422,
            "invalid_text",
        ),
        (
            "a search query of a megabyte",
            http.post(url("/v1/search"))
                .json(&serde_json::json!({"query": "lamp ".repeat(200_000)})),
            400,
            "invalid_query",
        ),
        (
            "one character past the query limit, counted in characters",
            http.post(url("/v1/search"))
                .json(&serde_json::json!({"query": "ü".repeat(4097)})),
            400,
            "invalid_query",
        ),
        (
            "a lone UTF-16 surrogate escaped in JSON",
            http.post(url("/v1/documents"))
                .header("content-type", "application/json")
                .body(r#"{"text": "half a pair: \ud800"}"#),
            400,
            "invalid_request",
        ),
        (
            "bytes that are not UTF-8",
            http.post(url("/v1/documents"))
                .header("content-type", "text/plain")
                .body(vec![0xff, 0xfe, 0x41]),
            422,
            "invalid_utf8",
        ),
        (
            "an empty document",
            http.post(url("/v1/documents"))
                .header("content-type", "text/plain")
                .body(""),
            422,
            "empty_document",
        ),
    ];
    for (name, request, status, code) in requests {
        let response = request.send().await.expect(name);
        assert_eq!(response.status().as_u16(), status, "{name}");
        let allow = response.headers().get("allow").cloned();
        let body: Value = response
            .json()
            .await
            .unwrap_or_else(|e| panic!("{name}: no JSON body: {e}"));
        assert_eq!(body["code"], code, "{name}: {body}");
        assert!(
            body["message"].as_str().is_some_and(|m| !m.is_empty()),
            "{name}: {body}"
        );
        if status == 405 {
            assert!(allow.is_some(), "{name}: no Allow header");
        }
    }

    // A Content-Length that claims a gigabyte is refused at once, not after the request timeout.
    let (status, body, elapsed) = raw_request(
        &hearthd,
        b"POST /v1/documents HTTP/1.1\r\nHost: localhost\r\nContent-Type: text/plain\r\n\
          Content-Length: 1000000000\r\n\r\nsmall",
    )
    .await;
    assert_eq!(status, 413, "{body}");
    assert!(body.contains("payload_too_large"), "{body}");
    assert!(elapsed < Duration::from_secs(5), "413 took {elapsed:?}");

    // Invented methods: each answered, none a series of its own.
    for i in 0..50 {
        let (status, body, _) = raw_request(
            &hearthd,
            format!("FROB{i} /v1/documents HTTP/1.1\r\nHost: localhost\r\n\r\n").as_bytes(),
        )
        .await;
        assert_eq!(status, 405, "{body}");
    }
    let metrics = http
        .get(url("/metrics"))
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    assert!(
        !metrics.contains("FROB"),
        "invented methods became series:\n{metrics}"
    );
    assert!(metrics.contains("method=\"other\""), "{metrics}");

    // A query at the limit, in two-byte characters, is a search like any other.
    let response = http
        .post(url("/v1/search"))
        .json(&serde_json::json!({"query": "ü".repeat(4096), "mode": "hybrid"}))
        .send()
        .await
        .expect("search at the limit");
    assert_eq!(response.status(), StatusCode::OK);

    // Queries built to break keyword search's tsquery or its BM25 arithmetic: each is a search like any other.
    let id = upload(
        &http,
        &hearthd,
        b"The lighthouse keeper's lamp: oil, a wick, and a C:\\lamp path.".to_vec(),
        "text/plain",
    )
    .await;
    assert_eq!(settled(&http, &hearthd, &id).await["status"], "ready");
    let long = "lamp ".repeat(800);
    let queries = [
        "the of and a",
        "'",
        "\\",
        "keeper's 'lamp'",
        "lamp:*",
        "!lamp",
        "lamp & | oil",
        "-lamp",
        "\"",
        "\"\"",
        "OR",
        "-",
        "lamp OR",
        "(lamp",
        "C:\\lamp",
        "\u{1f56f}",
        long.as_str(),
    ];
    for query in queries {
        for mode in ["keyword", "hybrid"] {
            let response = http
                .post(url("/v1/search"))
                .json(&serde_json::json!({"query": query, "mode": mode}))
                .send()
                .await
                .expect("search");
            let status = response.status();
            let body: Value = response.json().await.expect("json");
            assert_eq!(status, StatusCode::OK, "{mode} {query:?}: {body}");
            assert!(body["hits"].is_array(), "{mode} {query:?}: {body}");
        }
    }
    let found: Value = http
        .post(url("/v1/search"))
        .json(&serde_json::json!({"query": "keeper's lamp", "mode": "keyword"}))
        .send()
        .await
        .expect("search")
        .json()
        .await
        .expect("json");
    assert_eq!(found["hits"][0]["document_id"], id.as_str(), "{found}");

    // Unicode built to confuse: each document settles, with the text it was given, and hearthd stays up.
    let traps: [(&str, String); 4] = [
        (
            "only zero-width characters",
            "\u{200b}\u{feff}\u{200d}".repeat(50),
        ),
        (
            "a base letter under ten thousand combining accents",
            format!("a{} and then the lamp", "\u{301}".repeat(10_000)),
        ),
        (
            "bidirectional overrides around the text",
            "\u{202e}lamp oil\u{202c} \u{2066}keeper\u{2069} ".repeat(100),
        ),
        (
            "astral-plane characters only",
            "\u{1f56f}\u{1d54f}\u{10ffff} ".repeat(2_000),
        ),
    ];
    for (name, text) in traps {
        let id = upload(&http, &hearthd, text.clone().into_bytes(), "text/plain").await;
        let document = settled(&http, &hearthd, &id).await;
        assert_eq!(document["status"], "ready", "{name}: {document}");
        let original = http
            .get(url(&format!("/v1/documents/{id}/content")))
            .send()
            .await
            .expect("content")
            .bytes()
            .await
            .expect("bytes");
        assert_eq!(original.as_ref(), text.as_bytes(), "{name}: original changed");
    }

    // A document with NUL bytes in its text is kept, without them, and says so.
    let id = upload(
        &http,
        &hearthd,
        b"The keeper\0 trims the wick\0 at dusk.".to_vec(),
        "text/plain",
    )
    .await;
    let document = settled(&http, &hearthd, &id).await;
    assert_eq!(document["status"], "ready", "{document}");
    assert_eq!(
        document["notes"],
        serde_json::json!(["2 NUL characters (U+0000) removed from the text: PostgreSQL cannot store them"]),
        "{document}"
    );

    assert_eq!(hearthd.pid(), pid);
    assert!(!hearthd.log_text().contains("panicked"), "{}", hearthd.log_text());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_browser_page_from_another_site_cannot_reach_read_or_change_anything() {
    let postgres = TestPostgres::start().expect("postgres");
    let database = postgres.create_database().expect("database");
    let hearthd = TestHearthd::start(
        Path::new(HEARTHD),
        &database,
        &[("HEARTH_API__ALLOWED_HOSTS", "[\"notes.example.org\"]")],
    )
    .expect("hearthd");
    hearthd.ready().await;
    let http = reqwest::Client::new();
    let url = |path: &str| format!("{}{path}", hearthd.url);
    let port = hearthd.url.rsplit(':').next().expect("port").to_owned();

    // DNS rebinding: a name hearth does not answer to, even from loopback.
    let rebound = http
        .get(url("/v1/documents"))
        .header("host", format!("evil.example:{port}"))
        .send()
        .await
        .expect("request");
    assert_eq!(rebound.status(), StatusCode::FORBIDDEN);
    let body: Value = rebound.json().await.expect("json");
    assert_eq!(body["code"], "host_not_allowed", "{body}");
    for host in [
        format!("localhost:{port}"),
        format!("notes.example.org:{port}"),
        format!("hearth.local:{port}"),
    ] {
        let response = http
            .get(url("/v1/documents"))
            .header("host", &host)
            .send()
            .await
            .expect("request");
        assert_eq!(response.status(), StatusCode::OK, "{host}");
    }

    // A "simple" cross-site POST (no preflight) from any page: refused, from loopback too.
    for (header, value) in [
        ("origin", "https://evil.example"),
        ("sec-fetch-site", "cross-site"),
    ] {
        let response = http
            .post(url("/v1/documents"))
            .header("content-type", "text/plain")
            .header(header, value)
            .body("A page on another site tries to plant this.")
            .send()
            .await
            .expect("request");
        assert_eq!(response.status(), StatusCode::FORBIDDEN, "{header}: {value}");
        let body: Value = response.json().await.expect("json");
        assert_eq!(body["code"], "cross_site", "{body}");
    }
    // Reading is not trusted to a cross-site page on the box either: no token, no answer.
    let read = http
        .get(url("/v1/documents"))
        .header("sec-fetch-site", "cross-site")
        .send()
        .await
        .expect("request");
    assert_eq!(read.status(), StatusCode::UNAUTHORIZED);
    // The same origin is fine.
    let same = http
        .post(url("/v1/documents"))
        .header("content-type", "text/html")
        .header("origin", hearthd.url.clone())
        .body("<html><body><script>alert(document.cookie)</script><p>Tide tables</p></body></html>")
        .send()
        .await
        .expect("request");
    assert_eq!(same.status(), StatusCode::ACCEPTED);
    let uploaded: Value = same.json().await.expect("json");

    // An uploaded page is served as a download that cannot run, never as one of hearth's pages.
    let content = http
        .get(url(&format!(
            "/v1/documents/{}/content",
            uploaded["id"].as_str().expect("id")
        )))
        .send()
        .await
        .expect("content");
    assert_eq!(content.status(), StatusCode::OK);
    let headers = content.headers();
    assert!(
        headers["content-disposition"]
            .to_str()
            .expect("ascii")
            .starts_with("attachment; filename="),
        "{headers:?}"
    );
    assert_eq!(headers["x-content-type-options"], "nosniff");
    assert!(
        headers["content-security-policy"]
            .to_str()
            .expect("ascii")
            .contains("sandbox"),
        "{headers:?}"
    );
    // Every answer carries them.
    let health = http.get(url("/healthz")).send().await.expect("healthz");
    assert_eq!(health.headers()["x-content-type-options"], "nosniff");
    assert_eq!(health.headers()["x-frame-options"], "DENY");
}
