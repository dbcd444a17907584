//! Helpers shared by hearthd's integration tests.
// Each test binary compiles this module and uses a different subset of it.
#![allow(dead_code)]

/// Every original in a local blob store (`<dir>/sha256/<first two hex digits>/<sha256>`), by hash, sorted.
pub fn originals_in(blob_dir: &std::path::Path) -> Vec<String> {
    let mut found = Vec::new();
    for prefix in std::fs::read_dir(blob_dir.join("sha256"))
        .into_iter()
        .flatten()
        .flatten()
    {
        for entry in std::fs::read_dir(prefix.path()).into_iter().flatten().flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.len() == 64 {
                found.push(name);
            }
        }
    }
    found.sort();
    found
}

/// The database name in one of the kit's PostgreSQL URLs, for `TestPostgres::psql`.
pub fn database_name(url: &str) -> String {
    let path = url.split('?').next().unwrap_or(url);
    path.rsplit('/').next().unwrap_or(path).to_owned()
}

/// A PDF of `objects` (numbered from 1, the first the catalog), written out with correct cross-reference
/// offsets. Stream objects are given whole, dictionary and `stream … endstream` included.
pub fn pdf(objects: &[Vec<u8>]) -> Vec<u8> {
    let mut pdf = b"%PDF-1.4\n".to_vec();
    let mut offsets = Vec::new();
    for (i, object) in objects.iter().enumerate() {
        offsets.push(pdf.len());
        pdf.extend_from_slice(format!("{} 0 obj\n", i + 1).as_bytes());
        pdf.extend_from_slice(object);
        pdf.extend_from_slice(b"\nendobj\n");
    }
    let xref = pdf.len();
    pdf.extend_from_slice(format!("xref\n0 {}\n0000000000 65535 f \n", objects.len() + 1).as_bytes());
    for offset in offsets {
        pdf.extend_from_slice(format!("{offset:010} 00000 n \n").as_bytes());
    }
    pdf.extend_from_slice(
        format!(
            "trailer\n<< /Size {} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n",
            objects.len() + 1
        )
        .as_bytes(),
    );
    pdf
}

/// A stream object: its dictionary entries (without /Length) and its bytes.
pub fn stream(dictionary: &str, bytes: &[u8]) -> Vec<u8> {
    let mut object = format!("<< {dictionary} /Length {} >>\nstream\n", bytes.len()).into_bytes();
    object.extend_from_slice(bytes);
    object.extend_from_slice(b"\nendstream");
    object
}

/// A one-page PDF with a real text layer.
pub fn pdf_with_text(text: &str) -> Vec<u8> {
    pdf(&[
        b"<< /Type /Catalog /Pages 2 0 R >>".to_vec(),
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>".to_vec(),
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R \
          /Resources << /Font << /F1 5 0 R >> >> >>"
            .to_vec(),
        stream("", format!("BT /F1 12 Tf 72 720 Td ({text}) Tj ET").as_bytes()),
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>".to_vec(),
    ])
}

/// Runs `script` with the test Python (`cargo xtask deps` installs it) and `args`, off the async workers; returns
/// the JSON its last line prints. Panics with both outputs (and `context`, e.g. hearthd's log) when it fails.
pub async fn run_python(
    script: &'static str,
    args: Vec<String>,
    context: impl Fn() -> String,
) -> serde_json::Value {
    let python = hearth_testkit::test_python().expect("run `cargo xtask deps`");
    let output = tokio::task::spawn_blocking(move || {
        std::process::Command::new(python)
            .arg("-c")
            .arg(script)
            .args(args)
            .env("NO_PROXY", "*")
            .output()
    })
    .await
    .expect("join")
    .expect("python runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "python failed:\n{stdout}\n{}\n{}",
        String::from_utf8_lossy(&output.stderr),
        context()
    );
    let last = stdout.lines().last().unwrap_or_default();
    serde_json::from_str(last).unwrap_or_else(|e| panic!("python printed no JSON ({e}):\n{stdout}"))
}

/// A browser's session: signs in at `url` with `secret` (the API token or the setup code) as the web UI's form
/// does, and keeps the session cookie for the pages read after.
pub struct Session {
    pub http: reqwest::Client,
    pub url: String,
    pub cookie: String,
}

impl Session {
    pub async fn sign_in(url: &str, secret: &str, next: &str) -> Self {
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("client");
        let signed_in = http
            .post(format!("{url}/signin"))
            .header("origin", url)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(format!("secret={secret}&next={next}"))
            .send()
            .await
            .expect("sign in");
        assert_eq!(signed_in.status(), 303, "signing in");
        let cookie = signed_in.headers()["set-cookie"].to_str().expect("ascii");
        let cookie = cookie.split(';').next().expect("pair").to_owned();
        Self {
            http,
            url: url.to_owned(),
            cookie,
        }
    }

    /// `GET path` with the session: the status and the page.
    pub async fn page(&self, path: &str) -> (u16, String) {
        let response = self
            .http
            .get(format!("{}{path}", self.url))
            .header("cookie", &self.cookie)
            .send()
            .await
            .expect("page");
        (response.status().as_u16(), response.text().await.expect("html"))
    }
}
