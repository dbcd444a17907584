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
    common::ready(&hearthd).await;
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
