//! The `lockship` binary: parses arguments, runs the command, prints data on stdout and
//! errors (with a hint) on stderr. All the work lives in the library.

mod cli;
mod host_env;
mod image_render;
mod progress;
mod report_html;
mod sbom_file;
mod treemap;

use image_render::human_size;
use progress::Progress;

use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use lockship_engine::builder::{self, BuildOptions, BuildReport, Reporter, SmokeMode};
use lockship_engine::cache_command;
use lockship_engine::error::Error;
use lockship_engine::image_commands::{self, PushOptions, ReadOptions};
use lockship_engine::lock_command::{self, LockOptions};
use lockship_engine::output::Output;
use lockship_engine::plan::LayerContent;
use lockship_engine::sbom::SbomFormat;
use lockship_engine::smoke::SmokeRun;
use lockship_net::retry::RetryPolicy;
use lockship_net::NetOptions;
use lockship_oci::platform::Platform;

use cli::{
    BuildArgs, CacheArgs, CacheCommand, Cli, Command, DiffArgs, Format, InitArgs, InspectArgs,
    LockArgs, NetArgs, ProjectArgs, PruneArgs, PushArgs, ReadArgs, SbomArgs, SbomStandard,
    TestArgs,
};

/// Text from outside (wheel and package names, server messages, paths) made safe for a
/// terminal: control characters and bidirectional overrides are shown as escapes, so a hostile
/// name can neither recolour nor rewrite the screen, and continuation lines are indented, so
/// no text can pass itself off as lockship's own `error:` or `hint:` line.
/// Characters shown as escapes wherever outside text reaches a terminal: controls (which
/// recolour, move the cursor or end a line) and bidirectional overrides (which reorder it).
pub(crate) fn disarmed(c: char) -> bool {
    c.is_control() || matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

pub(crate) fn terminal_safe(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '\n' => out.push_str("\n  "),
            '\t' => out.push(' '),
            c if disarmed(c) => out.push_str(&c.escape_unicode().to_string()),
            c => out.push(c),
        }
    }
    out
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.spawn(stop_on_signal());
    let result = match cli.command {
        Command::Build(args) => runtime.block_on(run_build(args)),
        Command::Test(args) => runtime.block_on(run_test(args)),
        Command::Lock(args) => runtime.block_on(run_lock(args)),
        Command::Inspect(args) => runtime.block_on(run_inspect(args)),
        Command::Diff(args) => runtime.block_on(run_diff(args)),
        Command::Push(args) => runtime.block_on(run_push(args)),
        Command::Sbom(args) => runtime.block_on(run_sbom(args)),
        Command::Init(args) => run_init(&args),
        Command::Cache(CacheCommand::Info(args)) => run_cache_info(&args),
        Command::Cache(CacheCommand::Prune(args)) => run_cache_prune(&args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        // A stop made the work fail (its children killed, its files removed): the stop's
        // message is the only one to print, and the signal handler exits with 128 + the
        // signal once it has cleaned up. Waited for here, so that main does not exit first.
        Err(_) if lockship_sys::interrupt::stopping().is_some() => wait_for_stop(),
        Err(err) => {
            eprintln!("error: {}", terminal_safe(&err.to_string()));
            if let Some(hint) = err.hint() {
                eprintln!("hint: {}", terminal_safe(&hint));
            }
            ExitCode::FAILURE
        }
    }
}

/// The end of a stop under way: the signal handler's exit, or (should its clean-up hang) the
/// stop's exit code after a while.
fn wait_for_stop() -> ExitCode {
    std::thread::sleep(std::time::Duration::from_secs(30));
    let code = lockship_sys::interrupt::stopping().unwrap_or(1);
    ExitCode::from(u8::try_from(code).unwrap_or(1))
}

/// On SIGINT or SIGTERM: remove the temporary files still in use, stop child processes, and
/// exit with 128 + the signal's number, as shells expect. Runs on a runtime worker, so it acts
/// even while the main thread is busy writing.
async fn stop_on_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut int), Ok(mut term)) = (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
    ) else {
        return;
    };
    let code = tokio::select! {
        _ = int.recv() => 130,
        _ = term.recv() => 143,
    };
    lockship_sys::interrupt::begin_stop(code);
    eprintln!("lockship: stopped; removing temporary files and stopping child processes");
    lockship_sys::interrupt::clean_up();
    std::process::exit(code);
}

/// Network settings from the command line (and their environment variables).
fn net_options(args: &NetArgs) -> NetOptions {
    NetOptions {
        stall_timeout: Duration::from_secs(args.http_timeout),
        retry: RetryPolicy {
            attempts: args.http_retries + 1,
            ..RetryPolicy::default()
        },
        eager_tls: host_env::eager_tls(),
        ..NetOptions::default()
    }
}

/// Options with every command's common arguments and defaults for the rest.
fn options(common: &ProjectArgs) -> Result<BuildOptions, Error> {
    Ok(BuildOptions {
        project_dir: common.project.clone(),
        base: common.base.clone(),
        // `build_image` takes each of `platforms`; `lockship lock` reads the base for one.
        platform: None,
        platforms: parse_platforms(common.platform.as_deref())?,
        outputs: Vec::new(),
        cache_dir: common.cache_dir.clone().unwrap_or_else(host_env::cache_dir),
        source_date_epoch: host_env::source_date_epoch()?,
        tag: None,
        dry_run: false,
        upgrade_base: false,
        smoke: SmokeMode::Skip,
        runtime: None,
        network: false,
        target: lockship_engine::project::PRODUCTION.to_string(),
        net: net_options(&common.net),
        registry: host_env::registry_access()?,
        uv: host_env::uv(),
        index_sources: host_env::index_sources(),
        index_credentials: host_env::index_credentials(),
        url_vars: host_env::url_vars(),
        no_bytecode: false,
        ca_bundle: host_env::ca_bundle(),
        cache_from: Vec::new(),
        cache_to: Vec::new(),
        registry_cache: true,
    })
}

async fn run_build(args: BuildArgs) -> Result<(), Error> {
    let mut outputs = Vec::new();
    for spec in &args.output {
        outputs.push(Output::parse(spec).map_err(Error::Usage)?);
    }
    outputs.extend(args.push.iter().cloned().map(Output::Registry));
    if outputs.is_empty() && args.cache_to.is_empty() && !args.dry_run {
        return Err(Error::Usage(
            "nothing to do: give --push REF, --output oci:DIR, --output docker:FILE or --cache-to REF (or --dry-run)".into(),
        ));
    }
    if let Some(path) = &args.report {
        report_html::check_replaceable(path)?;
        if outputs.is_empty() && !args.dry_run {
            return Err(Error::Usage(
                "--report reads the image back from an output: add --output or --push".into(),
            ));
        }
    }
    let opts = BuildOptions {
        outputs,
        tag: args.tag.clone(),
        dry_run: args.dry_run,
        upgrade_base: args.upgrade_base,
        smoke: if args.no_test {
            SmokeMode::Skip
        } else {
            SmokeMode::BeforePush
        },
        runtime: args.smoke.runtime,
        network: args.smoke.network,
        target: args.target.clone(),
        no_bytecode: args.no_bytecode,
        cache_from: args.cache_from.clone(),
        cache_to: args.cache_to.clone(),
        ..options(&args.common)?
    };
    let progress = Progress::new(args.common.verbose);
    let result = builder::build_image(&opts, &progress).await;
    progress.finish();
    let report = result?;
    if progress.watched() && !args.dry_run {
        for line in image_render::summary(&report).lines() {
            eprintln!("{}", terminal_safe(line));
        }
    }
    if report.base_upgraded && report.base_changes.is_empty() {
        eprintln!(
            "lockship: base lock unchanged: every package is at the newest version the archives have"
        );
    }
    if !report.base_changes.is_empty() {
        eprintln!(
            "lockship: base lock updated ({}):",
            builder::counted(report.base_changes.len(), "change", "changes")
        );
        for change in &report.base_changes {
            eprintln!("  {change}");
        }
    }
    match (args.common.format, args.dry_run) {
        // A multi-platform build's plan is one per platform.
        (Format::Json, true) if !report.platforms.is_empty() => {
            let plans: Vec<_> = report.platforms.iter().map(|r| &r.plan).collect();
            println!(
                "{}",
                serde_json::to_string_pretty(&plans).unwrap_or_default()
            )
        }
        (Format::Json, true) => println!(
            "{}",
            serde_json::to_string_pretty(&report.plan).unwrap_or_default()
        ),
        (Format::Json, false) => println!(
            "{}",
            serde_json::to_string_pretty(&report).unwrap_or_default()
        ),
        (Format::Text, true) => {
            let plans = match report.platforms.as_slice() {
                [] => vec![render_plan(&report)],
                platforms => platforms.iter().map(render_plan).collect(),
            };
            for line in plans.join("\n").lines() {
                println!("{}", terminal_safe(line));
            }
        }
        (Format::Text, false) => println!("{}", report.digest),
    }
    if let (Some(path), false) = (&args.report, args.dry_run) {
        write_build_report(&args, &opts, &report, path).await?;
    }
    Ok(())
}

/// `build --report`: the image read back from its first local output (else the first
/// reference it was pushed to, by digest), drawn with the build's phases.
async fn write_build_report(
    args: &BuildArgs,
    opts: &BuildOptions,
    report: &BuildReport,
    path: &std::path::Path,
) -> Result<(), Error> {
    use lockship_engine::image_source::ImageSource;
    let (source, name) = opts
        .outputs
        .iter()
        .find_map(|out| match out {
            // By digest: the layout may hold other images beside this one.
            Output::OciLayout(dir) => Some((
                ImageSource::Layout {
                    dir: dir.clone(),
                    wanted: Some(report.digest.clone()),
                },
                format!("oci:{}", dir.display()),
            )),
            Output::DockerTar(file) => Some((
                ImageSource::DockerTar(file.clone()),
                format!("docker:{}", file.display()),
            )),
            Output::Registry(_) => None,
        })
        .or_else(|| {
            let pushed = report.pushed.first()?;
            let r = lockship_oci::registry::parse_reference(&pushed.reference).ok()?;
            let name = format!("{}/{}@{}", r.registry(), r.repository(), report.digest);
            Some((ImageSource::parse(&name).ok()?, name))
        })
        .ok_or_else(|| {
            Error::Usage(
                "--report reads the image back from an output: add --output or --push".into(),
            )
        })?;
    let read = ReadOptions {
        cache_dir: opts.cache_dir.clone(),
        net: opts.net.clone(),
        registry: opts.registry.clone(),
        platform: None,
    };
    let inspection =
        image_commands::inspect_source(&read, source, &name, &lockship_engine::builder::Silent)
            .await?;
    let timings = match report.platforms.as_slice() {
        [] => report.timings.clone(),
        platforms => platforms[0].timings.clone(),
    };
    report_html::write(path, &report_html::page(&inspection, Some(&timings)))?;
    if args.common.verbose {
        eprintln!("lockship: wrote {}", path.display());
    }
    Ok(())
}

/// `--platform linux/amd64,linux/arm64`: the platforms to build, in order.
fn parse_platforms(text: Option<&str>) -> Result<Vec<Platform>, Error> {
    let Some(text) = text else {
        return Ok(Vec::new());
    };
    lockship_engine::project::parse_platforms(text.split(','))
        .map_err(|message| Error::Usage(format!("--platform: {message}")))
}

async fn run_test(args: TestArgs) -> Result<(), Error> {
    let opts = BuildOptions {
        smoke: SmokeMode::Always,
        runtime: args.smoke.runtime,
        network: args.smoke.network,
        target: args.target.clone(),
        no_bytecode: args.no_bytecode,
        ..options(&args.common)?
    };
    let progress = Progress::new(args.common.verbose);
    let result = builder::build_image(&opts, &progress).await;
    progress.finish();
    let report = result?;
    if progress.watched() {
        for line in image_render::summary(&report).lines() {
            eprintln!("{}", terminal_safe(line));
        }
    }
    match args.common.format {
        Format::Json => println!(
            "{}",
            serde_json::to_string_pretty(&report).unwrap_or_default()
        ),
        Format::Text => println!(
            "{} passed {} smoke commands",
            report.digest,
            report.smoke.len()
        ),
    }
    Ok(())
}

fn run_cache_info(args: &CacheArgs) -> Result<(), Error> {
    let dir = args.cache_dir.clone().unwrap_or_else(host_env::cache_dir);
    let info = cache_command::info(&dir)?;
    match args.format {
        Format::Json => println!(
            "{}",
            serde_json::to_string_pretty(&info).unwrap_or_default()
        ),
        Format::Text => {
            println!("{}", terminal_safe(&info.dir.display().to_string()));
            for kind in &info.kinds {
                println!(
                    "  {:<14} {:>7} entries {:>10}",
                    kind.kind,
                    kind.entries,
                    human_size(kind.bytes)
                );
            }
            println!(
                "  {:<14} {:>15} {:>10}",
                "total",
                "",
                human_size(info.total_bytes)
            );
        }
    }
    Ok(())
}

fn run_cache_prune(args: &PruneArgs) -> Result<(), Error> {
    let dir = args
        .cache
        .cache_dir
        .clone()
        .unwrap_or_else(host_env::cache_dir);
    let opts = cache_command::PruneOptions {
        max_size: args.max_size,
        older_than: args
            .older_than
            .map(|days| Duration::from_secs(u64::from(days) * 86_400)),
    };
    let progress = Progress::new(false);
    let result = cache_command::prune(&dir, &opts, &progress);
    progress.finish();
    let report = result?;
    match args.cache.format {
        Format::Json => println!(
            "{}",
            serde_json::to_string_pretty(&report).unwrap_or_default()
        ),
        Format::Text => {
            let removed: u64 = report.removed.iter().map(|u| u.entries).sum();
            let kinds: Vec<String> = report
                .removed
                .iter()
                .map(|u| format!("{} {}", u.entries, u.kind))
                .collect();
            println!(
                "removed {removed} entries ({}){}; {} left",
                human_size(report.removed_bytes),
                if kinds.is_empty() {
                    String::new()
                } else {
                    format!(": {}", kinds.join(", "))
                },
                human_size(report.left_bytes)
            );
        }
    }
    Ok(())
}

/// The options of every command that reads images.
fn read_options(args: &ReadArgs) -> Result<ReadOptions, Error> {
    let platform = match args.platform.as_deref() {
        None => None,
        Some(text) => Some(Platform::parse(text).ok_or_else(|| {
            Error::Usage(format!(
                "--platform `{text}`: expected OS/ARCH[/VARIANT], e.g. linux/arm64"
            ))
        })?),
    };
    Ok(ReadOptions {
        cache_dir: args.cache_dir.clone().unwrap_or_else(host_env::cache_dir),
        net: net_options(&args.net),
        registry: host_env::registry_access()?,
        platform,
    })
}

/// Prints `value` as JSON, or as `text` renders it.
fn print_result<T: serde::Serialize>(format: Format, value: &T, text: impl Fn(&T) -> String) {
    let out = match format {
        Format::Json => {
            let mut json = serde_json::to_string_pretty(value).unwrap_or_default();
            json.push('\n');
            json
        }
        Format::Text => text(value),
    };
    write_stdout(out.as_bytes());
}

/// Writes results to stdout. A reader that stopped reading (`| head`) is not an error.
fn write_stdout(bytes: &[u8]) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(bytes).and_then(|_| out.flush());
}

async fn run_inspect(args: InspectArgs) -> Result<(), Error> {
    let opts = read_options(&args.read)?;
    if let Some(path) = &args.report {
        report_html::check_replaceable(path)?;
    }
    let progress = Progress::new(args.read.verbose);
    progress.step(&format!("reading {}", args.image));
    let result = image_commands::inspect_image(&opts, &args.image, &progress).await;
    progress.finish();
    let inspection = result?;
    if let Some(path) = &args.report {
        report_html::write(path, &report_html::page(&inspection, None))?;
    }
    print_result(args.format, &inspection, image_render::inspection);
    Ok(())
}

async fn run_diff(args: DiffArgs) -> Result<(), Error> {
    let opts = read_options(&args.read)?;
    let progress = Progress::new(args.read.verbose);
    progress.step(&format!("reading {} and {}", args.from, args.to));
    let result = image_commands::diff_images(&opts, &args.from, &args.to, &progress).await;
    progress.finish();
    print_result(args.format, &result?, image_render::diff);
    Ok(())
}

async fn run_push(args: PushArgs) -> Result<(), Error> {
    let opts = PushOptions {
        read: read_options(&args.read)?,
        project_named: args.project.is_some(),
        project_dir: args.project.clone().unwrap_or_else(|| ".".into()),
        target: args.target.clone(),
        smoke: if args.no_test {
            SmokeMode::Skip
        } else {
            SmokeMode::BeforePush
        },
        run: SmokeRun {
            runtime: args.smoke.runtime,
            network: args.smoke.network,
        },
    };
    let progress = Progress::new(args.read.verbose);
    let result = image_commands::push_image(&opts, &args.source, &args.targets, &progress).await;
    progress.finish();
    let outcome = result?;
    if outcome.smoke_remembered {
        eprintln!("lockship: smoke tests passed on this image before; not run again");
    }
    print_result(args.format, &outcome, image_render::push);
    Ok(())
}

async fn run_sbom(args: SbomArgs) -> Result<(), Error> {
    let opts = read_options(&args.read)?;
    let format = match args.format {
        SbomStandard::Cyclonedx => SbomFormat::CycloneDx,
        SbomStandard::Spdx => SbomFormat::Spdx,
    };
    // Checked before any work: an existing file that is not an SBOM is never replaced.
    if let Some(path) = &args.output {
        sbom_file::check_replaceable(path)?;
    }
    let progress = Progress::new(args.read.verbose);
    progress.step(&format!("reading {}", args.image));
    let result =
        image_commands::sbom_image(&opts, &args.image, format, args.attach, &progress).await;
    progress.finish();
    let outcome = result?;
    let bytes = lockship_engine::sbom::to_bytes(&outcome.document);
    match &args.output {
        Some(path) => sbom_file::write(path, &bytes)?,
        None => {
            use std::io::Write;
            let mut out = std::io::stdout().lock();
            out.write_all(&bytes)
                .and_then(|_| out.flush())
                .map_err(|source| Error::Io {
                    path: "stdout".into(),
                    source,
                })?;
        }
    }
    if let Some(digest) = &outcome.attached {
        eprintln!("lockship: attached the SBOM to {} as {digest}", args.image);
    }
    Ok(())
}

fn run_init(args: &InitArgs) -> Result<(), Error> {
    let report =
        lockship_engine::init_command::init(&lockship_engine::init_command::InitOptions {
            project_dir: args.project.clone(),
            dockerfile: args.dockerfile.clone(),
            print_only: args.print,
        })?;
    if args.format == Format::Json {
        print_result(args.format, &report, |_| String::new());
        return Ok(());
    }
    if args.print {
        write_stdout(report.table.as_bytes());
    }
    if let Some(path) = &report.written {
        eprintln!("lockship: added [tool.lockship] to {}:", path.display());
        for line in report.table.lines() {
            eprintln!("  {}", terminal_safe(line));
        }
    }
    if !report.carried.is_empty() {
        eprintln!("carried over:");
        for line in &report.carried {
            eprintln!("  {}", terminal_safe(line));
        }
    }
    if !report.not_carried.is_empty() {
        eprintln!("not carried over, and what to do instead:");
        for line in &report.not_carried {
            eprintln!("  {}", terminal_safe(line));
        }
    }
    Ok(())
}

async fn run_lock(args: LockArgs) -> Result<(), Error> {
    let common = options(&args.common)?;
    let opts = BuildOptions {
        dry_run: true,
        // A lock is made for one base: the first platform named, else the host's.
        platform: common.platforms.first().cloned(),
        ..common
    };
    let lock_opts = LockOptions {
        upgrade: args.upgrade,
        upgrade_packages: args.upgrade_package.clone(),
        check: args.check,
    };
    let progress = Progress::new(args.common.verbose);
    let result = lock_command::run(&opts, &lock_opts, &progress).await;
    progress.finish();
    let report = result?;
    match args.common.format {
        Format::Json => println!(
            "{}",
            serde_json::to_string_pretty(&report).unwrap_or_default()
        ),
        Format::Text if args.check => println!("{} is up to date", report.lock.display()),
        Format::Text => print!("{}", lock_command::render(&report)),
    }
    Ok(())
}

/// The plan as a human-readable listing.
fn render_plan(report: &BuildReport) -> String {
    let t = &report.target;
    let mut out = format!(
        "base    {}\ntarget  {} (python {}.{}.{} at {}, venv {})\nlayers\n",
        report.base,
        t.describe(),
        t.version.0,
        t.version.1,
        t.version.2,
        t.interpreter,
        t.venv
    );
    for (i, layer) in report.plan.layers.iter().enumerate() {
        out.push_str(&format!(
            "  {:>2}  {}\n",
            i + 1,
            layer.description.trim_start_matches("lockship: ")
        ));
        if let LayerContent::Wheels { wheels, .. } = &layer.content {
            if wheels.len() > 1 {
                for w in wheels {
                    out.push_str(&format!("        {}\n", w.wheel.filename));
                }
            }
        }
    }
    out
}
