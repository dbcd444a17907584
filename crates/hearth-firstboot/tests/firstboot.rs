//! The real `hearth-firstboot` binary against real directories and a real Garage.

use std::collections::BTreeMap;
use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _};
use std::os::unix::process::ExitStatusExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use base64::Engine as _;
use hearth_firstboot::secrets;
use hearth_firstboot::secrets_dir::SecretsDir;
use hearth_testkit::TestGarage;
use object_store::ObjectStoreExt as _;
use object_store::path::Path as ObjectPath;

/// A scratch machine: its secrets directory, and every byte the binary printed, checked for leaks on drop.
struct Machine {
    root: tempfile::TempDir,
    printed: Vec<u8>,
}

impl Machine {
    fn new() -> Self {
        Self {
            root: tempfile::tempdir().expect("tempdir"),
            printed: Vec::new(),
        }
    }

    fn secrets_dir(&self) -> PathBuf {
        self.root.path().join("var/lib/hearth/secrets")
    }

    fn firstboot(&mut self, args: &[&str], env: &[(&str, &str)]) -> Output {
        let output = Command::new(env!("CARGO_BIN_EXE_hearth-firstboot"))
            .arg("--secrets-dir")
            .arg(self.secrets_dir())
            .args(args)
            .env_remove("HEARTH_FIRSTBOOT_CRASH_AT")
            .envs(env.iter().copied())
            .output()
            .expect("hearth-firstboot runs");
        self.printed.extend_from_slice(&output.stdout);
        self.printed.extend_from_slice(&output.stderr);
        // Checked after every run, so a secret repaired away later is still looked for.
        self.assert_nothing_secret_printed();
        output
    }

    fn mint(&mut self) -> Output {
        let output = self.firstboot(&["mint"], &[]);
        assert!(output.status.success(), "mint failed: {}", text(&output));
        output
    }

    /// Every secret file's bytes by name.
    fn files(&self) -> BTreeMap<String, Vec<u8>> {
        std::fs::read_dir(self.secrets_dir())
            .expect("secrets dir")
            .map(|entry| entry.expect("entry").path())
            .filter(|path| path.is_file())
            .map(|path| {
                let name = path.file_name().expect("name").to_string_lossy().into_owned();
                (name, std::fs::read(&path).expect("read"))
            })
            .collect()
    }

    fn assert_nothing_secret_printed(&self) {
        let Ok(entries) = std::fs::read_dir(self.secrets_dir()) else {
            return;
        };
        for entry in entries {
            let path = entry.expect("entry").path();
            let name = path.file_name().expect("name").to_string_lossy().into_owned();
            if name.starts_with('.') || !path.is_file() {
                continue;
            }
            let value = std::fs::read(&path).expect("read");
            if value.len() < 8 {
                // Too short to be a minted secret (a test's damaged value), and would match by chance.
                continue;
            }
            // The raw key could surface encoded, so look for its common encodings too.
            let shapes = [
                value.clone(),
                hex::encode(&value).into_bytes(),
                base64::engine::general_purpose::STANDARD
                    .encode(&value)
                    .into_bytes(),
            ];
            for shape in shapes {
                assert!(
                    !self.printed.windows(shape.len()).any(|w| w == shape.as_slice()),
                    "the value of {name} was printed"
                );
            }
        }
    }
}

fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).expect("metadata").permissions().mode() & 0o7777
}

fn needed() -> Vec<&'static str> {
    secrets::needed(false).map(|spec| spec.name).collect()
}

#[test]
fn a_fresh_machine_gets_every_secret_0400_in_a_0700_directory_and_no_two_machines_share_one() {
    let mut first = Machine::new();
    let mut second = Machine::new();
    let printed = text(&first.mint());
    second.mint();
    assert_eq!(mode(&first.secrets_dir()), 0o700);
    for name in needed() {
        let path = first.secrets_dir().join(name);
        assert_eq!(mode(&path), 0o400, "{name}");
        assert_eq!(
            std::fs::metadata(&path).expect("metadata").uid(),
            rustix::process::geteuid().as_raw()
        );
        let value = std::fs::read(&path).expect("read");
        let spec = secrets::spec(name).expect("known");
        assert_eq!(spec.problem(&value), None, "{name}");
        assert_ne!(
            value,
            std::fs::read(second.secrets_dir().join(name)).expect("read"),
            "{name}"
        );
        let fingerprint = SecretsDir::new(first.secrets_dir())
            .read(name)
            .expect("usable")
            .fingerprint();
        assert!(
            printed.contains(&format!("created   {name:<22} fp={fingerprint}")),
            "{printed}"
        );
    }
    // TCP PostgreSQL is not configured, so there is no password.
    assert!(!first.secrets_dir().join("postgres-password").exists());
    assert!(first.secrets_dir().join(".minted-v2").exists());
    assert!(printed.contains("first boot complete"), "{printed}");
}

#[test]
fn a_second_run_changes_nothing_not_even_a_timestamp() {
    let mut machine = Machine::new();
    machine.mint();
    let stamp = |path: &Path| {
        let meta = std::fs::symlink_metadata(path).expect("metadata");
        (meta.mtime(), meta.mtime_nsec(), meta.ino())
    };
    let before_files = machine.files();
    let mut paths: Vec<PathBuf> = needed().iter().map(|n| machine.secrets_dir().join(n)).collect();
    paths.push(machine.secrets_dir().join(".minted-v2"));
    paths.push(machine.secrets_dir());
    let before: Vec<_> = paths.iter().map(|p| stamp(p)).collect();

    let printed = text(&machine.mint());
    assert!(printed.contains("nothing to do"), "{printed}");
    assert_eq!(machine.files(), before_files);
    assert_eq!(paths.iter().map(|p| stamp(p)).collect::<Vec<_>>(), before);
}

#[test]
fn tcp_postgres_adds_a_password_and_only_that() {
    let mut machine = Machine::new();
    machine.mint();
    let before = machine.files();
    let printed = text(&machine.firstboot(&["mint", "--postgres-over-tcp"], &[]));
    let after = machine.files();
    assert!(printed.contains("created   postgres-password"), "{printed}");
    for (name, bytes) in &before {
        assert_eq!(after.get(name), Some(bytes), "{name} changed");
    }
    assert!(after.contains_key("postgres-password"));
}

#[test]
fn a_crash_at_any_point_leaves_whole_files_and_the_rerun_completes() {
    let names = needed();
    let middle = names[names.len() / 2];
    for point in [
        format!("before-rename:{middle}"),
        format!("after-rename:{middle}"),
        "before-sentinel".to_owned(),
    ] {
        let mut machine = Machine::new();
        let crashed = machine.firstboot(&["mint"], &[("HEARTH_FIRSTBOOT_CRASH_AT", &point)]);
        assert_eq!(crashed.status.signal(), Some(9), "{point}: {}", text(&crashed));
        assert!(!machine.secrets_dir().join(".minted-v2").exists(), "{point}");
        let survivors = machine.files();
        for (name, bytes) in &survivors {
            if name.starts_with('.') {
                // A temporary file is never read; the next run removes it.
                assert!(name.contains(".tmp-"), "{point}: unexpected {name}");
                continue;
            }
            let spec = secrets::spec(name).expect("a known secret");
            assert_eq!(spec.problem(bytes), None, "{point}: {name} is partial");
        }
        assert_eq!(
            survivors.contains_key(middle),
            point.starts_with("after") || point == "before-sentinel",
            "{point}"
        );

        machine.mint();
        let complete = machine.files();
        assert!(
            complete.keys().all(|name| !name.contains(".tmp-")),
            "{point}: temporary left"
        );
        for name in &names {
            assert!(
                complete.contains_key(*name),
                "{point}: {name} missing after the rerun"
            );
        }
        for (name, bytes) in survivors.iter().filter(|(n, _)| !n.starts_with('.')) {
            assert_eq!(complete.get(name), Some(bytes), "{point}: {name} was regenerated");
        }
        assert!(complete.contains_key(".minted-v2"));
    }
}

#[test]
fn an_unusable_secret_fails_the_run_by_name_and_nothing_is_regenerated() {
    type Damage<'a> = &'a dyn Fn(&Path);
    let cases: [(&str, Damage); 4] = [
        ("api-token", &|path| {
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o440)).expect("chmod");
        }),
        ("garage-admin-token", &|path| replace(path, b"changeme")),
        ("s3-secret-key", &|path| replace(path, b"")),
        ("garage-rpc-secret", &|path| replace(path, b"0123abcd")),
    ];
    for (name, damage) in cases {
        let mut machine = Machine::new();
        machine.mint();
        let path = machine.secrets_dir().join(name);
        damage(&path);
        // A missing secret next to the bad one must not be created by a run that fails.
        let other = if name == "encryption-key" {
            "api-token"
        } else {
            "encryption-key"
        };
        std::fs::remove_file(machine.secrets_dir().join(other)).expect("remove");
        let before = machine.files();

        let failed = machine.firstboot(&["mint"], &[]);
        let printed = text(&failed);
        assert!(!failed.status.success(), "{name}: {printed}");
        assert!(printed.contains(&format!("  {name}: ")), "{name}: {printed}");
        assert!(printed.contains("--repair"), "{printed}");
        assert_eq!(machine.files(), before, "{name}: the failed run changed files");

        let status = machine.firstboot(&["status", "--no-garage"], &[]);
        assert_eq!(status.status.code(), Some(1));
        assert!(
            text(&status).contains(&format!("UNUSABLE  {name}")),
            "{}",
            text(&status)
        );

        let repaired = machine.firstboot(&["mint", "--repair", name], &[]);
        assert!(repaired.status.success(), "{name}: {}", text(&repaired));
        assert!(text(&repaired).contains(&format!("repaired  {name}")));
        assert!(text(&repaired).contains(&format!("created   {other}")));
        let value = std::fs::read(&path).expect("read");
        assert_eq!(secrets::spec(name).expect("known").problem(&value), None);
        assert_eq!(mode(&path), 0o400);
    }
}

#[test]
fn a_group_readable_directory_or_a_symlinked_secret_is_refused() {
    let mut machine = Machine::new();
    machine.mint();
    std::fs::set_permissions(machine.secrets_dir(), std::fs::Permissions::from_mode(0o750)).expect("chmod");
    let failed = machine.firstboot(&["mint"], &[]);
    assert!(!failed.status.success());
    assert!(text(&failed).contains("chmod 0700"), "{}", text(&failed));
    std::fs::set_permissions(machine.secrets_dir(), std::fs::Permissions::from_mode(0o700)).expect("chmod");

    let token = machine.secrets_dir().join("api-token");
    let elsewhere = machine.root.path().join("token-elsewhere");
    std::fs::rename(&token, &elsewhere).expect("move");
    std::os::unix::fs::symlink(&elsewhere, &token).expect("symlink");
    let failed = machine.firstboot(&["mint"], &[]);
    assert!(!failed.status.success());
    assert!(
        text(&failed).contains("api-token: is a symbolic link"),
        "{}",
        text(&failed)
    );
}

#[test]
fn seal_without_systemd_creds_says_so_and_writes_nothing() {
    let mut machine = Machine::new();
    let empty_path = tempfile::tempdir().expect("tempdir");
    let failed = machine.firstboot(
        &["mint", "--seal"],
        &[("PATH", empty_path.path().to_str().expect("utf-8"))],
    );
    assert!(!failed.status.success());
    assert!(text(&failed).contains("systemd-creds"), "{}", text(&failed));
    assert!(!machine.secrets_dir().exists());
}

/// Where `systemd-creds` exists, each sealed copy decrypts to the plain secret under its own name; where it does
/// not, `--seal` must refuse and say why.
#[test]
fn sealed_copies_decrypt_to_the_same_secret_or_sealing_is_refused() {
    let mut machine = Machine::new();
    let output = machine.firstboot(&["mint", "--seal"], &[]);
    let available = Command::new("systemd-creds").arg("--version").output().is_ok();
    if !available {
        assert!(!output.status.success());
        assert!(text(&output).contains("systemd-creds"), "{}", text(&output));
        return;
    }
    assert!(output.status.success(), "{}", text(&output));
    for name in needed() {
        let sealed = machine.secrets_dir().join("sealed").join(format!("{name}.cred"));
        assert_eq!(mode(&sealed), 0o400, "{name}");
        let sealed_bytes = std::fs::read(&sealed).expect("read");
        let plain = std::fs::read(machine.secrets_dir().join(name)).expect("read");
        assert!(
            !sealed_bytes.windows(plain.len()).any(|w| w == plain.as_slice()),
            "{name} sealed in clear"
        );
        let decrypted = Command::new("systemd-creds")
            .args(["decrypt", &format!("--name={name}")])
            .arg(&sealed)
            .arg("-")
            .output()
            .expect("systemd-creds decrypt");
        assert!(decrypted.status.success(), "{name}: {}", text(&decrypted));
        assert_eq!(decrypted.stdout, plain, "{name}");
    }
    let again = machine.firstboot(&["mint", "--seal"], &[]);
    assert!(text(&again).contains("nothing to do"), "{}", text(&again));

    // A repaired secret's sealed copy is sealed again: in the same run, and in a later one after a repair made
    // without --seal.
    let secrets = machine.secrets_dir();
    let decrypt = |name: &str| {
        let output = Command::new("systemd-creds")
            .args(["decrypt", &format!("--name={name}")])
            .arg(secrets.join("sealed").join(format!("{name}.cred")))
            .arg("-")
            .output()
            .expect("systemd-creds decrypt");
        assert!(output.status.success(), "{name}: {}", text(&output));
        output.stdout
    };
    let plain = |name: &str| std::fs::read(secrets.join(name)).expect("read");
    let before = plain("api-token");
    let repaired = machine.firstboot(&["mint", "--repair", "api-token", "--seal"], &[]);
    assert!(repaired.status.success(), "{}", text(&repaired));
    assert_ne!(plain("api-token"), before);
    assert_eq!(
        decrypt("api-token"),
        plain("api-token"),
        "the sealed copy kept the old token"
    );
    let repaired = machine.firstboot(&["mint", "--repair", "api-token"], &[]);
    assert!(repaired.status.success(), "{}", text(&repaired));
    let resealed = machine.firstboot(&["mint", "--seal"], &[]);
    assert!(
        text(&resealed).contains("sealed    api-token"),
        "{}",
        text(&resealed)
    );
    assert_eq!(
        decrypt("api-token"),
        plain("api-token"),
        "the stale sealed copy was kept"
    );
    assert_eq!(mode(&secrets.join("sealed").join("api-token.cred")), 0o400);
}

#[test]
fn the_console_note_shows_the_web_uis_address_and_the_setup_code_to_root_only() {
    let mut machine = Machine::new();
    let output = machine.firstboot(&["mint", "--console-issue-port", "8080"], &[]);
    assert!(output.status.success(), "{}", text(&output));
    let code = std::fs::read_to_string(machine.secrets_dir().join("setup-code")).expect("setup-code");
    let groups: Vec<&str> = code.split('-').collect();
    assert_eq!(groups.len(), 4, "{code:?}");
    for group in groups {
        assert_eq!(group.len(), 4, "{code:?}");
        assert!(
            group
                .bytes()
                .all(|b| b"0123456789ABCDEFGHJKMNPQRSTVWXYZ".contains(&b)),
            "{code:?}"
        );
    }
    let path = machine.secrets_dir().join("console.issue");
    let note = std::fs::read_to_string(&path).expect("console.issue");
    assert!(note.contains(&format!("setup code  {code}\n")), "{note}");
    // agetty's escape for the machine's address; nothing else in the note may start an escape.
    assert!(note.contains("http://\\4:8080/"), "{note}");
    assert_eq!(note.matches('\\').count(), 1, "{note}");
    assert_eq!(mode(&path), 0o400);
    // A second run rewrites the note and keeps the code.
    let again = machine.firstboot(&["mint", "--console-issue-port", "8080"], &[]);
    assert!(again.status.success(), "{}", text(&again));
    assert_eq!(std::fs::read_to_string(&path).expect("note"), note);
}

#[test]
fn unknown_repair_names_the_known_secrets() {
    let mut machine = Machine::new();
    let failed = machine.firstboot(&["mint", "--repair", "api_token"], &[]);
    assert!(!failed.status.success());
    let printed = text(&failed);
    assert!(printed.contains("unknown secret 'api_token'"), "{printed}");
    assert!(printed.contains("api-token"), "{printed}");
}

fn replace(path: &Path, bytes: &[u8]) {
    std::fs::remove_file(path).expect("remove");
    std::fs::write(path, bytes).expect("write");
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o400)).expect("chmod");
}

#[tokio::test(flavor = "multi_thread")]
async fn garage_provisioning_yields_a_working_key_and_a_second_run_is_a_no_op() {
    let mut machine = Machine::new();
    machine.mint();
    let garage = TestGarage::start_with_minted_secrets(&machine.secrets_dir()).expect("garage starts");
    let endpoint = garage.admin_endpoint.clone();

    let before = machine.firstboot(&["status", "--admin-endpoint", &endpoint], &[]);
    assert_eq!(before.status.code(), Some(1), "{}", text(&before));
    assert!(
        text(&before).contains("not provisioned: missing layout, key, bucket, grants"),
        "{}",
        text(&before)
    );

    let first = machine.firstboot(&["garage", "--admin-endpoint", &endpoint], &[]);
    assert!(first.status.success(), "{}", text(&first));
    let printed = text(&first);
    assert_eq!(printed.matches("done     ").count(), 4, "{printed}");

    let files = machine.files();
    let key_id = String::from_utf8(files["s3-access-key-id"].clone()).expect("utf-8");
    let secret = String::from_utf8(files["s3-secret-key"].clone()).expect("utf-8");
    let store = object_store::aws::AmazonS3Builder::new()
        .with_endpoint(&garage.s3_endpoint)
        .with_region(&garage.region)
        .with_bucket_name("hearth")
        .with_access_key_id(&key_id)
        .with_secret_access_key(&secret)
        .with_allow_http(true)
        .with_virtual_hosted_style_request(false)
        .build()
        .expect("s3 client");
    let path = ObjectPath::from("firstboot/probe");
    store
        .put(&path, b"minted key works".to_vec().into())
        .await
        .expect("put with the minted key");
    let got = store.get(&path).await.expect("get").bytes().await.expect("body");
    assert_eq!(got.as_ref(), b"minted key works");

    let second = machine.firstboot(&["garage", "--admin-endpoint", &endpoint], &[]);
    assert!(second.status.success(), "{}", text(&second));
    let printed = text(&second);
    assert_eq!(printed.matches("unchanged").count(), 4, "{printed}");
    assert!(printed.contains("nothing to do"), "{printed}");

    let after = machine.firstboot(&["status", "--admin-endpoint", &endpoint], &[]);
    assert!(after.status.success(), "{}", text(&after));
    assert!(text(&after).contains("provisioned (layout, key, bucket, grants)"));
}

#[test]
fn garage_that_never_answers_times_out_with_a_clear_message() {
    let mut machine = Machine::new();
    machine.mint();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("port")
        .port();
    let endpoint = format!("http://127.0.0.1:{port}");
    let failed = machine.firstboot(
        &["garage", "--admin-endpoint", &endpoint, "--wait-seconds", "1"],
        &[],
    );
    assert!(!failed.status.success());
    assert!(
        text(&failed).contains(&format!("{endpoint} did not answer within 1s")),
        "{}",
        text(&failed)
    );
}

#[test]
fn garage_started_with_another_admin_token_is_reported_not_retried() {
    let mut machine = Machine::new();
    machine.mint();
    let garage = TestGarage::start_unprovisioned().expect("garage starts");
    let failed = machine.firstboot(&["garage", "--admin-endpoint", &garage.admin_endpoint], &[]);
    assert!(!failed.status.success());
    assert!(
        text(&failed).contains("Garage refused the admin token"),
        "{}",
        text(&failed)
    );
}

/// A fleet: `fleet-secrets` mints node keys Garage accepts (the printed ids are the ids Garage reports), the layout
/// keeper lays out every declared node in one version, another box waits for it, and running either again changes
/// nothing.
#[tokio::test(flavor = "multi_thread")]
async fn a_fleets_cluster_is_laid_out_once_by_its_keeper_and_every_rerun_is_a_no_op() {
    let mut machine = Machine::new();
    machine.mint();
    let fleet = machine.root.path().join("fleet");
    let fleet_arg = fleet.display().to_string();
    let names = ["pi-kitchen", "pi-study", "workstation"];
    let mut args = vec!["fleet-secrets", "--out", fleet_arg.as_str()];
    for name in names {
        args.extend(["--node", name]);
    }
    let minted = machine.firstboot(&args, &[]);
    assert!(minted.status.success(), "{}", text(&minted));
    let printed = text(&minted);
    let ids: Vec<String> = names
        .iter()
        .map(|name| {
            let line = printed
                .lines()
                .find(|line| line.contains(&format!("{name} garage node id")))
                .unwrap_or_else(|| panic!("no id for {name}: {printed}"));
            line.split_whitespace().nth(5).expect("the id").to_owned()
        })
        .collect();
    let again = machine.firstboot(&args, &[]);
    assert_eq!(text(&again).matches("kept").count(), 5, "{}", text(&again));

    let secrets = hearth_testkit::ClusterSecrets {
        rpc_secret_file: fleet.join("garage-rpc-secret"),
        admin_token_file: machine.secrets_dir().join("garage-admin-token"),
        node_keys: names
            .iter()
            .map(|name| fleet.join(format!("{name}.garage-node-key")))
            .collect(),
    };
    let cluster = hearth_testkit::TestGarageCluster::start_unprovisioned(3, &secrets).expect("cluster");
    for (index, id) in ids.iter().enumerate() {
        assert_eq!(
            &cluster.node_id(index).expect("node id"),
            id,
            "Garage runs with the minted key"
        );
    }
    let mut garage = |index: usize, keeper: bool, wait: &str| {
        let mut args = vec![
            "garage".to_owned(),
            "--admin-endpoint".into(),
            cluster.admin_endpoint(index).into(),
            "--bucket".into(),
            format!("hearth-{}", names[index]),
            "--wait-seconds".into(),
            wait.into(),
        ];
        for (id, name) in ids.iter().zip(names) {
            args.extend(["--cluster-node".into(), format!("{id}={name}:100000000000")]);
        }
        if keeper {
            args.push("--apply-layout".into());
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        machine.firstboot(&args, &[])
    };
    let early = garage(0, false, "2");
    assert!(!early.status.success(), "a box waits for the keeper");
    assert!(text(&early).contains("layout keeper"), "{}", text(&early));

    let keeper = garage(2, true, "60");
    assert!(keeper.status.success(), "{}", text(&keeper));
    assert!(text(&keeper).contains("3 nodes added"), "{}", text(&keeper));
    let pi = garage(0, false, "60");
    assert!(pi.status.success(), "{}", text(&pi));
    assert!(
        text(&pi).contains("unchanged cluster layout (version 1, 3 declared nodes)"),
        "{}",
        text(&pi)
    );
    assert!(
        text(&pi).contains("done      bucket 'hearth-pi-kitchen'"),
        "{}",
        text(&pi)
    );
    // Garage took both catch-up repairs (a refused launch fails the run; a node that cannot start one is named).
    assert!(
        text(&pi).contains("checks every block it references") && !text(&pi).contains("could not start"),
        "{}",
        text(&pi)
    );
    let rerun = garage(2, true, "60");
    assert!(text(&rerun).contains("nothing to do"), "{}", text(&rerun));

    // `status` checks the box's own bucket when HEARTH_GARAGE_BUCKET names it (the NixOS module sets it on a
    // fleet box), the default one otherwise; what is no bucket name is refused before Garage is asked, saying
    // what to give.
    let mut status = |bucket: Option<&str>| {
        let endpoint = ("HEARTH_GARAGE_ADMIN_ENDPOINT", cluster.admin_endpoint(0));
        let env: Vec<(&str, &str)> = std::iter::once(endpoint)
            .chain(bucket.map(|bucket| ("HEARTH_GARAGE_BUCKET", bucket)))
            .collect();
        machine.firstboot(&["status"], &env)
    };
    let garage_line = |output: &Output| {
        let printed = text(output);
        printed
            .lines()
            .find(|line| line.starts_with("garage ("))
            .unwrap_or_else(|| panic!("no garage line: {printed}"))
            .to_owned()
    };
    let own = garage_line(&status(Some("hearth-pi-kitchen")));
    assert!(
        own.ends_with("provisioned (layout, key, bucket, grants)"),
        "{own}"
    );
    let default = garage_line(&status(None));
    assert!(default.contains("missing bucket"), "{default}");
    let long = "b".repeat(300);
    for hostile in ["", "../x", "a\u{1}b", "é", "Hearth", long.as_str()] {
        let refused = status(Some(hostile));
        assert_eq!(refused.status.code(), Some(2), "{hostile:?}: {}", text(&refused));
        assert!(
            text(&refused).contains("3 to 63 lowercase"),
            "{hostile:?}: {}",
            text(&refused)
        );
    }
    let layout = cluster.cli(1, &["layout", "show"]).expect("layout show");
    assert!(layout.contains("version: 1"), "one version: {layout}");
    for name in names {
        assert!(layout.contains(name), "every zone: {layout}");
    }
}
