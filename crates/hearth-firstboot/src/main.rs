//! hearth-firstboot: mints per-instance secrets and provisions Garage on first power-on.
//! The commands arrive with the first-boot issue; until then it only describes itself.

use clap::Parser;

#[derive(Debug, Parser)]
#[command(
    version,
    about = "Mint every per-instance secret on first power-on and provision Garage (not implemented yet)"
)]
struct Cli {}

fn main() {
    let _ = Cli::parse();
    println!("hearth-firstboot: no commands yet; see --help");
}
