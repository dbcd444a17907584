//! A Nix new enough for nixpkgs' `lib` (the evaluation gate needs >= 2.18; Debian 12 has 2.8): one on PATH, or
//! Debian 13's `nix-bin` unpacked into the cache with the libraries it links and run through their own dynamic
//! loader, so the host's system is left as it is.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, anyhow, bail};
use hearth_core::digest::sha256_file;

use crate::deps::find_on_path;
use crate::manifest::PrivateNix;
use crate::run_step;

/// A `nix-instantiate` to run, and its version.
#[derive(Debug)]
pub struct NixInstantiate {
    pub program: PathBuf,
    pub version: String,
}

/// A `nix-instantiate` of at least `spec.minimum`: `$HEARTH_NIX_INSTANTIATE`, the one on PATH, or the private one
/// (installed into `cache` on first use).
pub fn find_or_install(spec: &PrivateNix, cache: &Path) -> Result<NixInstantiate> {
    let candidates = std::env::var_os("HEARTH_NIX_INSTANTIATE")
        .map(PathBuf::from)
        .into_iter()
        .chain(find_on_path("nix-instantiate"));
    for candidate in candidates {
        if let Some(version) = version_of(&candidate)
            && at_least(&version, &spec.minimum)
        {
            return Ok(NixInstantiate {
                program: candidate,
                version,
            });
        }
    }
    let program = install(spec, cache)?;
    let version = version_of(&program).ok_or_else(|| {
        anyhow!(
            "{} does not run: delete {} and try again",
            program.display(),
            program.parent().and_then(Path::parent).unwrap_or(cache).display()
        )
    })?;
    Ok(NixInstantiate { program, version })
}

fn version_of(program: &Path) -> Option<String> {
    let output = Command::new(program).arg("--version").output().ok()?;
    if !output.status.success() {
        return None;
    }
    // "nix-instantiate (Nix) 2.26.3"
    String::from_utf8_lossy(&output.stdout)
        .split_whitespace()
        .last()
        .map(str::to_owned)
}

fn at_least(version: &str, minimum: &str) -> bool {
    let parse = |v: &str| -> Vec<u64> {
        v.split(|c: char| !c.is_ascii_digit())
            .filter(|part| !part.is_empty())
            .take(3)
            .map(|part| part.parse().unwrap_or(0))
            .collect()
    };
    parse(version) >= parse(minimum)
}

struct Arch {
    debian: &'static str,
    triplet: &'static str,
    loader: &'static str,
}

fn arch() -> Result<Arch> {
    match std::env::consts::ARCH {
        "x86_64" => Ok(Arch {
            debian: "amd64",
            triplet: "x86_64-linux-gnu",
            loader: "ld-linux-x86-64.so.2",
        }),
        "aarch64" => Ok(Arch {
            debian: "arm64",
            triplet: "aarch64-linux-gnu",
            loader: "ld-linux-aarch64.so.1",
        }),
        other => bail!(
            "the private Nix is only set up for x86_64 and aarch64, not {other}: put a Nix >= 2.18 on PATH"
        ),
    }
}

/// `<cache>/nix-<version>/bin/nix-instantiate`, a wrapper around the unpacked `nix`.
fn install(spec: &PrivateNix, cache: &Path) -> Result<PathBuf> {
    let arch = arch()?;
    let dest = cache.join(format!("nix-{}", spec.version));
    let wrapper = dest.join("bin").join("nix-instantiate");
    if wrapper.is_file() {
        return Ok(wrapper);
    }
    let expected = spec.sha256.get(std::env::consts::ARCH).ok_or_else(|| {
        anyhow!(
            "deps.toml pins no {} for {}",
            spec.package,
            std::env::consts::ARCH
        )
    })?;
    if find_on_path("apt-get").is_none() || find_on_path("dpkg-deb").is_none() {
        bail!(
            "no Nix >= {} on PATH, and no apt-get/dpkg-deb to fetch Debian's: install Nix >= {} (or set \
             HEARTH_NIX_INSTANTIATE)",
            spec.minimum,
            spec.minimum
        );
    }
    println!(
        "nix-eval: fetching Debian {}'s {} {} and its libraries into {} (once)",
        spec.suite,
        spec.package,
        spec.version,
        dest.display()
    );
    let apt = AptRoot::prepare(cache, spec, &arch)?;
    let debs = apt.download(&format!("{}={}", spec.package, spec.version))?;
    let package_deb = debs
        .iter()
        .find(|deb| {
            deb.file_name()
                .is_some_and(|name| name.to_string_lossy().starts_with(&format!("{}_", spec.package)))
        })
        .ok_or_else(|| anyhow!("apt did not fetch {}", spec.package))?;
    let actual = sha256_file(package_deb)?;
    if actual != *expected {
        bail!(
            "sha256 mismatch for {}: expected {expected}, got {actual}; nothing was installed",
            package_deb.display()
        );
    }
    let staging = cache.join(format!("nix-{}.partial-{}", spec.version, std::process::id()));
    let _ = fs::remove_dir_all(&staging);
    let root = staging.join("root");
    fs::create_dir_all(&root)?;
    for deb in &debs {
        run_step(
            Command::new("dpkg-deb").arg("-x").arg(deb).arg(&root),
            &format!("{} could not be unpacked", deb.display()),
        )?;
    }
    let lib = |dir: &str| format!("{}/{dir}/{}", dest.join("root").display(), arch.triplet);
    let script = format!(
        "#!/bin/sh\n# Debian {suite}'s nix {version}, run through its own loader and libraries (cargo xtask deps).\n\
         exec '{usr_lib}/{loader}' --library-path '{usr_lib}:{root_lib}' --argv0 nix-instantiate '{nix}' \"$@\"\n",
        suite = spec.suite,
        version = spec.version,
        usr_lib = lib("usr/lib"),
        root_lib = lib("lib"),
        loader = arch.loader,
        nix = dest.join("root/usr/bin/nix").display(),
    );
    fs::create_dir_all(staging.join("bin"))?;
    let staged_wrapper = staging.join("bin").join("nix-instantiate");
    fs::write(&staged_wrapper, script)?;
    fs::set_permissions(&staged_wrapper, fs::Permissions::from_mode(0o755))?;
    fs::rename(&staging, &dest).with_context(|| format!("moving the private Nix into {}", dest.display()))?;
    Ok(wrapper)
}

/// apt-get over a package index of its own (another Debian release, nothing installed), kept in the cache.
struct AptRoot {
    dir: PathBuf,
    options: Vec<String>,
}

impl AptRoot {
    fn prepare(cache: &Path, spec: &PrivateNix, arch: &Arch) -> Result<Self> {
        let dir = cache.join(format!("apt-{}-{}", spec.suite, arch.debian));
        for sub in ["lists/partial", "archives/partial"] {
            fs::create_dir_all(dir.join(sub))?;
        }
        fs::write(
            dir.join("sources.list"),
            format!(
                "deb [arch={} signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] {} {} main\n",
                arch.debian, spec.mirror, spec.suite
            ),
        )?;
        // An empty dpkg status: apt resolves the whole closure, as for a machine with nothing installed.
        fs::write(dir.join("status"), "")?;
        let path = |sub: &str| dir.join(sub).display().to_string();
        let options = vec![
            format!("APT::Architecture={}", arch.debian),
            format!("APT::Architectures={}", arch.debian),
            format!("Dir::Etc::SourceList={}", path("sources.list")),
            "Dir::Etc::SourceParts=/dev/null".to_owned(),
            format!("Dir::State::Lists={}", path("lists")),
            format!("Dir::State::status={}", path("status")),
            format!("Dir::Cache::archives={}", path("archives")),
            "Debug::NoLocking=1".to_owned(),
            "APT::Sandbox::User=root".to_owned(),
        ];
        let apt = Self { dir, options };
        run_step(
            apt.command().args(["update", "-qq"]),
            "apt-get could not read the Debian mirror's index (its error is above)",
        )?;
        Ok(apt)
    }

    fn command(&self) -> Command {
        let mut command = Command::new("apt-get");
        for option in &self.options {
            command.arg("-o").arg(option);
        }
        command.env("DEBIAN_FRONTEND", "noninteractive");
        command
    }

    /// Downloads `package` and everything it depends on; returns the .deb files.
    fn download(&self, package: &str) -> Result<Vec<PathBuf>> {
        run_step(
            self.command()
                .args([
                    "install",
                    "-qq",
                    "-y",
                    "--download-only",
                    "--no-install-recommends",
                ])
                .arg(package),
            &format!(
                "apt-get could not fetch {package}: is that version still in the suite? (its error is above)"
            ),
        )?;
        let archives = self.dir.join("archives");
        let debs: Vec<PathBuf> = fs::read_dir(&archives)?
            .filter_map(|entry| entry.ok().map(|e| e.path()))
            .filter(|path| path.extension().is_some_and(|ext| ext == "deb"))
            .collect();
        if debs.is_empty() {
            bail!("apt-get left no packages in {}", archives.display());
        }
        Ok(debs)
    }
}

#[cfg(test)]
mod tests {
    use super::at_least;

    #[test]
    fn versions_compare_by_number_not_by_text() {
        assert!(at_least("2.26.3", "2.18"));
        assert!(at_least("2.18", "2.18"));
        assert!(!at_least("2.8.0", "2.18"));
        assert!(at_least("2.100.1", "2.18"));
    }
}
