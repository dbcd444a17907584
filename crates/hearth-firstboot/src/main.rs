//! hearth-firstboot: mints every per-instance secret on first power-on and provisions Garage.
//! Prints names and fingerprints only, never a secret.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use hearth_firstboot::garage::{ClusterLayout, ClusterNode, GarageAdmin, ProvisionOptions, ProvisionState};
use hearth_firstboot::secrets_dir::{MintOptions, SecretState, SecretsDir};

#[derive(Debug, Parser)]
#[command(
    version,
    about = "Mint every per-instance secret on first power-on and provision Garage; prints fingerprints, never secrets"
)]
struct Cli {
    /// Where the secrets live (0700, root); each secret is one 0400 file named after it.
    #[arg(
        long,
        env = "HEARTH_SECRETS_DIR",
        default_value = "/var/lib/hearth/secrets",
        global = true
    )]
    secrets_dir: PathBuf,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Create every missing secret (existing ones are kept, unusable ones fail the run), then the sentinel.
    Mint {
        /// hearth reaches PostgreSQL over TCP, so it needs a password (the local socket uses peer auth).
        #[arg(long, env = "HEARTH_POSTGRES_OVER_TCP")]
        postgres_over_tcp: bool,
        /// Regenerate this secret even though it exists (repeatable). Its consumers must then be restarted.
        #[arg(long, value_name = "NAME")]
        repair: Vec<String>,
        /// Also write systemd-creds-encrypted copies (TPM2 when present) under sealed/ for LoadCredentialEncrypted=.
        #[arg(long)]
        seal: bool,
        /// Also write `console.issue`: the web UI's address on this port and the setup code, for the console's
        /// login prompt (NixOS links it into /etc/issue.d).
        #[arg(long, value_name = "PORT")]
        console_issue_port: Option<u16>,
    },
    /// Provision Garage through its admin API: the layout (one node, or a fleet's declared nodes), hearth's S3 key,
    /// the bucket and its grants.
    Garage {
        #[command(flatten)]
        garage: GarageArgs,
        /// Give up when Garage's admin API has not answered for this many seconds.
        #[arg(long, default_value_t = 60)]
        wait_seconds: u64,
        /// Zone of the single node's layout role.
        #[arg(long, default_value = "dc1")]
        zone: String,
        /// Capacity given to the single node, in bytes. Only ratios between nodes matter, so on one node this is
        /// nominal.
        #[arg(long, default_value_t = 100_000_000_000)]
        capacity: u64,
        /// A fleet's cluster: every node its layout must hold, as ID=ZONE:CAPACITY (the node's 64-hex Garage id,
        /// its zone, its capacity in bytes); repeat for each. Without it, a single-node layout.
        #[arg(long = "cluster-node", value_name = "ID=ZONE:CAPACITY")]
        cluster_nodes: Vec<ClusterNode>,
        /// This box keeps the cluster's layout: it adds the declared nodes the layout lacks. The other boxes wait
        /// for it (up to --wait-seconds).
        #[arg(long, requires = "cluster_nodes")]
        apply_layout: bool,
    },
    /// Mint the secrets a fleet shares, once, on the operator's machine: the Garage cluster's RPC secret, the
    /// token the boxes present to each other, and each box's Garage node key. Prints each node's Garage id (for
    /// the flake), never a secret; existing files are kept, so running it again prints the same ids.
    FleetSecrets {
        /// Where to write them (created 0700); copy each box's files to it, root-owned 0400.
        #[arg(long)]
        out: PathBuf,
        /// A box of the fleet, by host name; repeat for each.
        #[arg(long = "node", value_name = "NAME", required = true)]
        nodes: Vec<String>,
    },
    /// Which secrets exist (fingerprint, mode), whether first boot completed and whether Garage is provisioned.
    /// Exits 1 when anything is missing or unusable.
    Status {
        #[arg(long, env = "HEARTH_POSTGRES_OVER_TCP")]
        postgres_over_tcp: bool,
        #[command(flatten)]
        garage: GarageArgs,
        /// Skip the Garage check (for example before garage.service runs).
        #[arg(long)]
        no_garage: bool,
    },
}

#[derive(Debug, clap::Args)]
struct GarageArgs {
    /// Garage's admin API.
    #[arg(
        long,
        env = "HEARTH_GARAGE_ADMIN_ENDPOINT",
        default_value = "http://127.0.0.1:3903"
    )]
    admin_endpoint: String,
    /// The bucket hearth stores originals in (in a fleet, each box's own: `hearth-<name>`).
    #[arg(
        long,
        env = "HEARTH_GARAGE_BUCKET",
        default_value = "hearth",
        value_parser = hearth_firstboot::garage::bucket_name
    )]
    bucket: String,
    /// The name given to hearth's S3 key in Garage.
    #[arg(long, default_value = "hearth")]
    key_name: String,
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let dir = SecretsDir::new(&cli.secrets_dir);
    match run(&dir, cli.command).await {
        Ok(code) => code,
        Err(error) => {
            #[allow(clippy::print_stderr)] // a oneshot unit's error channel is the journal, via stderr
            {
                eprintln!("hearth-firstboot: {error:#}");
            }
            ExitCode::FAILURE
        }
    }
}

async fn run(dir: &SecretsDir, command: Command) -> anyhow::Result<ExitCode> {
    match command {
        Command::Mint {
            postgres_over_tcp,
            repair,
            seal,
            console_issue_port,
        } => {
            let options = MintOptions {
                postgres_over_tcp,
                repair,
                seal,
            };
            mint(dir, &options, console_issue_port)
        }
        Command::Garage {
            garage,
            wait_seconds,
            zone,
            capacity,
            cluster_nodes,
            apply_layout,
        } => {
            let options = ProvisionOptions {
                bucket: garage.bucket.clone(),
                key_name: garage.key_name.clone(),
                zone,
                capacity,
                wait: Duration::from_secs(wait_seconds),
                cluster: (!cluster_nodes.is_empty()).then_some(ClusterLayout {
                    nodes: cluster_nodes,
                    apply: apply_layout,
                }),
            };
            provision_garage(dir, &garage, &options).await
        }
        Command::FleetSecrets { out, nodes } => fleet_secrets(&out, &nodes),
        Command::Status {
            postgres_over_tcp,
            garage,
            no_garage,
        } => status(dir, postgres_over_tcp, (!no_garage).then_some(&garage)).await,
    }
}

fn mint(
    dir: &SecretsDir,
    options: &MintOptions,
    console_issue_port: Option<u16>,
) -> anyhow::Result<ExitCode> {
    let report = dir.mint(options)?;
    for (spec, state) in &report.secrets {
        println!("{}", describe(spec.name, state));
    }
    if let Some(port) = console_issue_port {
        let path = dir.write_console_issue(port)?;
        println!(
            "console   the setup code is shown at the login prompt ({})",
            path.display()
        );
    }
    for name in &report.sealed {
        println!("sealed    {name} -> sealed/{name}.cred");
    }
    if report.sentinel_written {
        println!("first boot complete: {}", report.sentinel.display());
    } else if !report.changed_anything() {
        println!("nothing to do: every secret is present and usable");
    }
    Ok(ExitCode::SUCCESS)
}

async fn provision_garage(
    dir: &SecretsDir,
    garage: &GarageArgs,
    options: &ProvisionOptions,
) -> anyhow::Result<ExitCode> {
    let admin = GarageAdmin::new(&garage.admin_endpoint, dir.read("garage-admin-token")?)?;
    let key_id = dir.read("s3-access-key-id")?;
    let secret_key = dir.read("s3-secret-key")?;
    let steps = admin.provision(&key_id, &secret_key, options).await?;
    let changed = steps.iter().any(|step| step.changed);
    for step in &steps {
        let verb = if step.changed { "done     " } else { "unchanged" };
        println!("{verb} {}", step.what);
    }
    if options.cluster.is_some() {
        let failed = admin.launch_catch_up().await?;
        println!(
            "catch-up  every node pushes its tables to the others (a box that was away gets what it missed)"
        );
        println!(
            "catch-up  this node checks every block it references (a block a power cut kept from arriving is fetched again)"
        );
        for (node, error) in failed {
            println!("catch-up  node {node} could not start it: {error}");
        }
    }
    if !changed {
        println!("nothing to do: Garage was already provisioned");
    }
    Ok(ExitCode::SUCCESS)
}

fn fleet_secrets(out: &std::path::Path, nodes: &[String]) -> anyhow::Result<ExitCode> {
    let minted = hearth_firstboot::fleet::mint(out, nodes)?;
    let labels = ["rpc secret", "fleet token"]
        .into_iter()
        .map(str::to_owned)
        .chain(nodes.iter().map(|node| format!("{node} garage node id")));
    for (label, minted) in labels.zip(&minted) {
        let verb = if minted.written { "minted " } else { "kept   " };
        println!("{verb} {label:<28} {}  ({})", minted.shown, minted.file.display());
    }
    Ok(ExitCode::SUCCESS)
}

async fn status(
    dir: &SecretsDir,
    postgres_over_tcp: bool,
    garage: Option<&GarageArgs>,
) -> anyhow::Result<ExitCode> {
    let mut healthy = true;
    println!("secrets in {}:", dir.path().display());
    for (spec, state) in dir.inspect(postgres_over_tcp)? {
        healthy &= matches!(state, SecretState::Present { .. });
        println!("  {}", describe(spec.name, &state));
    }
    let sentinel = dir.sentinel_path(postgres_over_tcp);
    let complete = sentinel.exists();
    healthy &= complete;
    println!(
        "first boot: {} ({})",
        if complete { "complete" } else { "not complete" },
        sentinel.display()
    );
    if let Some(garage) = garage {
        let state = match garage_state(dir, garage).await {
            Ok(state) => state,
            Err(error) => ProvisionState::Unknown(error.to_string()),
        };
        healthy &= matches!(state, ProvisionState::Provisioned);
        println!("garage ({}): {state}", garage.admin_endpoint);
    }
    Ok(if healthy {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

async fn garage_state(dir: &SecretsDir, garage: &GarageArgs) -> anyhow::Result<ProvisionState> {
    let admin = GarageAdmin::new(&garage.admin_endpoint, dir.read("garage-admin-token")?)?;
    let key_id = dir.read("s3-access-key-id")?;
    Ok(admin.provision_state(&key_id, &garage.bucket).await)
}

fn describe(name: &str, state: &SecretState) -> String {
    match state {
        SecretState::Missing => format!("missing   {name}"),
        SecretState::Present { fingerprint, mode } => {
            format!("present   {name:<22} fp={fingerprint} mode={mode:04o}")
        }
        SecretState::Unusable { problem } => format!("UNUSABLE  {name:<22} {problem}"),
        SecretState::Created { fingerprint } => format!("created   {name:<22} fp={fingerprint}"),
        SecretState::Repaired { old, new } => format!(
            "repaired  {name:<22} fp={} -> fp={new} (restart its consumers)",
            old.as_deref().unwrap_or("unusable")
        ),
    }
}
