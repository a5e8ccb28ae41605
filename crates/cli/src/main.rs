//! `yatai`: the one binary of Yatai in Rust — the registry server and its operations.

mod config;
mod deployments;
mod image;
mod operator;

use std::process::ExitCode;

use std::time::Instant;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use config::{ConfigFile, LogFormat, ServeArgs, StorageArgs};
use yatai_server::{AppState, Settings};
use yatai_store::{Db, ObjectStorage};

/// mimalloc, not the system's allocator. Why: a fresh list of bentos builds and drops thousands
/// of small strings and maps (rows read as JSON, the answer written as JSON), and glibc's malloc
/// and free were 22 % of the instructions the server ran for one (callgrind, 50 fresh lists of
/// 20 at 10,000 bentos); with mimalloc the whole request takes 19 % fewer (bench/RESULTS.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Yatai in Rust: a self-hosted registry for BentoML bentos and models.
#[derive(Debug, Parser)]
#[command(name = "yatai", version, about, long_about = None, after_help = "Settings come from flags, then their environment variables, then the --config file, then the defaults.")]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// Log format [default: text]
    #[arg(long, global = true, env = "YATAI_LOG_FORMAT", value_enum)]
    log_format: Option<LogFormat>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the Yatai API server (REST API, dashboard, deployments, health, metrics).
    Serve(Box<ServeArgs>),
    /// Apply pending database migrations and exit (`serve` also applies them on start).
    Migrate(StorageArgs),
    /// Object storage (S3) operations.
    #[command(subcommand)]
    S3(S3Command),
    /// Write a consistent backup of the installation (database and archives) to one file.
    ///
    /// The database is read in one snapshot (a read transaction) and exactly the archives that
    /// snapshot refers to are copied, so the server may keep running: an upload finishing
    /// meanwhile is either wholly in the backup or not at all. Everything is streamed (memory
    /// stays flat); progress goes to stderr. The file is a tar with a manifest (format and
    /// schema versions, row counts, size and SHA-256 of every entry), gzip-compressed when its
    /// name ends in .gz or .tgz. It appears only once complete. Takes the storage settings of
    /// `serve`.
    Backup(BackupArgs),
    /// Restore a backup into an empty installation (either backend pair).
    ///
    /// Reads the whole archive first and checks every size and SHA-256 against the manifest:
    /// a corrupted or truncated archive is refused before anything is written. Then migrates
    /// the target schema, writes the archives, inserts all rows in one transaction, and applies
    /// newer migrations. A backup of SQLite + directory restores into PostgreSQL + S3 and the
    /// reverse. Refuses a target that holds any row unless --force. Takes the storage settings
    /// of `serve` for the target.
    Restore(RestoreArgs),
    /// Import a Yatai 1.x (Go) installation: its PostgreSQL database and its bucket.
    ///
    /// Copies users (password hashes kept), organizations, members, API tokens (the same
    /// tokens keep working), bento and model repositories and versions with their manifests,
    /// labels, bento-model relations and events, and copies every archive from the Yatai 1.x
    /// bucket into this installation's storage, checking its size and recording its SHA-256.
    /// Records keep their Yatai 1.x uids, so running it again changes nothing and an
    /// interrupted run resumes where it stopped. --dry-run prints what it would import. The
    /// target (this installation, with the storage settings of `serve`) must be empty or an
    /// earlier import of the same source.
    Import(ImportArgs),
    /// Print the CustomResourceDefinitions (Bento, BentoRequest, BentoDeployment) as YAML.
    ///
    /// Generated from the Rust types the operators use; the output is ready for `kubectl apply -f -`.
    /// BentoDeployment lists every version; only v2alpha1 is served (older YAML: `yatai convert`).
    Crds,
    /// Run the deployment operator: BentoDeployments become Deployments, Services, HPAs and Ingresses.
    ///
    /// Watches BentoDeployments (and their Bentos and objects) in the cluster of the current kubeconfig or
    /// service account, and applies the desired objects with server-side apply. `render` prints them instead.
    DeploymentOperator(Box<operator::DeploymentOperatorArgs>),
    /// Rewrite BentoDeployments of older versions (v1alpha1..v1alpha3) as v2alpha1.
    ///
    /// Prints the file with each older BentoDeployment converted, preceded by the BentoRequest its bento_tag
    /// becomes (named as the original conversion named it). Other documents are printed unchanged.
    Convert(operator::ConvertArgs),
    /// Container images of bentos.
    #[command(subcommand)]
    Image(image::ImageCommand),
    /// Run the image-builder controller: BentoRequests become images and Bentos.
    ///
    /// Watches BentoRequests (resources.yatai.ai/v1alpha1) with the kubeconfig or the in-cluster
    /// configuration. For each: if spec.image is set or the image (Yatai's name for the bento in
    /// the DOCKER_REGISTRY_* registry) exists, no build; otherwise builds it in this process (as
    /// `yatai image build` does, reporting the status to --endpoint when the bento comes from
    /// there). Then creates or updates the Bento of the same name, owned by the request, and sets
    /// the conditions ImageExistsChecked, ImageExists, ImageBuilding and BentoAvailable with a
    /// Kubernetes event at each step. Failed builds are retried after 5 s, doubling up to 5 min.
    ImageBuilder(image::ControllerArgs),
}

/// Arguments of `yatai import`.
#[derive(Debug, Args)]
struct ImportArgs {
    #[command(flatten)]
    storage: StorageArgs,
    /// URL of the Yatai 1.x PostgreSQL database, postgres://USER:PASS@HOST:PORT/DB
    #[arg(
        long,
        value_name = "URL",
        env = "YATAI1_DATABASE_URL",
        hide_env_values = true
    )]
    from_yatai_postgres: String,
    /// S3 endpoint of the Yatai 1.x bucket (host:port or URL)
    #[arg(long, value_name = "ENDPOINT")]
    from_yatai_s3_endpoint: Option<String>,
    /// Access key of the Yatai 1.x bucket
    #[arg(long, value_name = "KEY")]
    from_yatai_s3_access_key: Option<String>,
    /// Secret key of the Yatai 1.x bucket
    #[arg(
        long,
        value_name = "SECRET",
        env = "YATAI1_S3_SECRET_KEY",
        hide_env_values = true
    )]
    from_yatai_s3_secret_key: Option<String>,
    /// Region of the Yatai 1.x bucket [default: us-east-1]
    #[arg(long, value_name = "REGION")]
    from_yatai_s3_region: Option<String>,
    /// Use https for an endpoint given without scheme [default: true]
    #[arg(long, value_name = "BOOL", value_parser = clap::builder::BoolishValueParser::new())]
    from_yatai_s3_secure: Option<bool>,
    /// Name of the Yatai 1.x bucket (its S3_BUCKET_NAME)
    #[arg(long, value_name = "BUCKET")]
    from_yatai_s3_bucket_name: Option<String>,
    /// Print what would be imported; write nothing
    #[arg(long)]
    dry_run: bool,
}

/// Arguments of `yatai backup`.
#[derive(Debug, Args)]
struct BackupArgs {
    #[command(flatten)]
    storage: StorageArgs,
    /// File to write (must not exist; .tar, or .tar.gz / .tgz for gzip)
    #[arg(long, short, value_name = "FILE")]
    output: std::path::PathBuf,
}

/// Arguments of `yatai restore`.
#[derive(Debug, Args)]
struct RestoreArgs {
    #[command(flatten)]
    storage: StorageArgs,
    /// Backup file written by `yatai backup`
    #[arg(long, short, value_name = "FILE")]
    input: std::path::PathBuf,
    /// Replace the contents of a target that is not empty (its rows are deleted in the same
    /// transaction that inserts the backup's; its archives not in the backup are left in place)
    #[arg(long)]
    force: bool,
}

#[derive(Debug, Subcommand)]
enum S3Command {
    /// Check the S3 connection step by step, with the settings `serve` uses.
    ///
    /// Checks that the endpoint resolves, accepts connections and answers HTTP(S), that the
    /// clocks agree, that the credentials are accepted, that the bucket exists (or creates it
    /// with --create-bucket), and that put, get, presigned GET and PUT, and delete of a probe
    /// object work. Prints a line per step and `successfully` at the end; on failure, one
    /// `error:` line naming the cause (DNS, TCP, TLS, credentials, clock skew, missing bucket,
    /// permissions) and exit code 1.
    Check(S3CheckArgs),
}

/// Arguments of `yatai s3 check`.
#[derive(Debug, Args)]
struct S3CheckArgs {
    #[command(flatten)]
    storage: StorageArgs,
    /// Create the bucket when it does not exist
    #[arg(long)]
    create_bucket: bool,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let config_path = match &cli.command {
        Command::Serve(a) => a.storage.config.clone(),
        Command::Migrate(a) => a.config.clone(),
        Command::S3(S3Command::Check(a)) => a.storage.config.clone(),
        Command::Backup(a) => a.storage.config.clone(),
        Command::Restore(a) => a.storage.config.clone(),
        Command::Import(a) => a.storage.config.clone(),
        Command::Crds
        | Command::DeploymentOperator(_)
        | Command::Convert(_)
        | Command::Image(_)
        | Command::ImageBuilder(_) => None,
    };
    let file = match ConfigFile::load(config_path.as_deref()) {
        Ok(f) => f,
        Err(e) => return fail(e),
    };
    init_logging(
        cli.log_format
            .or(file.log_format)
            .unwrap_or(LogFormat::Text),
    );
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => return fail(e.into()),
    };
    let result = runtime.block_on(async {
        match cli.command {
            Command::Serve(args) => serve(args.resolve(&file)?).await,
            Command::Migrate(args) => migrate(args.resolve(&file)?).await,
            Command::S3(S3Command::Check(args)) => s3_check(args, &file).await,
            Command::Backup(args) => backup(args, &file).await,
            Command::Restore(args) => restore(args, &file).await,
            Command::Import(args) => import(args, &file).await,
            Command::Crds => {
                print!("{}", yatai_crds::crds_yaml());
                Ok(())
            }
            Command::DeploymentOperator(args) => match args.command {
                Some(operator::DeploymentOperatorCommand::Render(r)) => operator::render(r),
                None => operator::run(args.objects, args.run).await,
            },
            Command::Convert(args) => operator::convert(args),
            Command::Image(cmd) => image::run(cmd).await,
            Command::ImageBuilder(args) => image::controller(args).await,
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => fail(e),
    }
}

fn fail(e: anyhow::Error) -> ExitCode {
    let chain: Vec<String> = e.chain().map(|c| c.to_string()).collect();
    eprintln!("error: {}", chain.join(": "));
    ExitCode::FAILURE
}

fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,sqlx=warn,tower_http=warn"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => builder.init(),
    }
}

async fn open_db(storage: &config::Storage) -> anyhow::Result<Db> {
    let db = storage.connect().await?;
    let applied = db.migrate().await?;
    if applied > 0 {
        tracing::info!(applied, "database migrations applied");
    }
    Ok(db)
}

async fn migrate(storage: config::Storage) -> anyhow::Result<()> {
    let db = open_db(&storage).await?;
    db.close().await;
    println!(
        "database is up to date ({})",
        yatai_store::db::redact_url(&storage.database_url)
    );
    Ok(())
}

async fn s3_check(args: S3CheckArgs, file: &ConfigFile) -> anyhow::Result<()> {
    let Some(s3) = args.storage.resolve_s3(file)? else {
        anyhow::bail!("no S3 storage is configured: set S3_ENDPOINT (or --s3-endpoint), S3_BUCKET_NAME, S3_ACCESS_KEY and S3_SECRET_KEY");
    };
    let options = yatai_ops::s3check::CheckOptions {
        create_bucket: args.create_bucket,
    };
    yatai_ops::s3check::check(&s3, &options, &mut |line| println!("{line}")).await
}

fn progress() -> yatai_ops::util::Progress {
    std::sync::Arc::new(|line| eprintln!("{line}"))
}

async fn backup(args: BackupArgs, file: &ConfigFile) -> anyhow::Result<()> {
    let storage = args.storage.resolve(file)?;
    let db = storage.connect().await?;
    let objects = ObjectStorage::open(&storage.objects).await?;
    let result = yatai_ops::backup::backup(&db, &objects, &args.output, progress()).await;
    db.close().await;
    let s = result?;
    println!(
        "backup written to {}: {} rows in {} tables, {} objects ({}), {} in {:.1} s",
        s.path.display(),
        s.manifest.rows(),
        s.manifest.tables.len(),
        s.manifest.objects.len(),
        yatai_ops::util::human_bytes(s.manifest.object_bytes()),
        yatai_ops::util::human_bytes(s.archive_size),
        s.elapsed.as_secs_f64()
    );
    Ok(())
}

async fn restore(args: RestoreArgs, file: &ConfigFile) -> anyhow::Result<()> {
    let storage = args.storage.resolve(file)?;
    let db = storage.connect().await?;
    let objects = ObjectStorage::open(&storage.objects).await?;
    let options = yatai_ops::restore::RestoreOptions { force: args.force };
    let result =
        yatai_ops::restore::restore(&args.input, &db, &objects, &options, progress()).await;
    db.close().await;
    let s = result?;
    println!(
        "restored {} into {} and {}: {} rows in {} tables, {} objects ({}) in {:.1} s{}",
        args.input.display(),
        yatai_store::db::redact_url(&storage.database_url),
        objects.describe(),
        s.manifest.rows(),
        s.manifest.tables.len(),
        s.manifest.objects.len(),
        yatai_ops::util::human_bytes(s.manifest.object_bytes()),
        s.elapsed.as_secs_f64(),
        if s.replaced.is_empty() {
            String::new()
        } else {
            format!(
                " (replaced {} rows that were there)",
                s.replaced.iter().map(|(_, n)| n).sum::<i64>()
            )
        }
    );
    Ok(())
}

async fn import(args: ImportArgs, file: &ConfigFile) -> anyhow::Result<()> {
    let storage = args.storage.resolve(file)?;
    let legacy = yatai_ops::import::connect_legacy(&args.from_yatai_postgres).await?;
    let legacy_objects =
        if args.from_yatai_s3_endpoint.is_some() || args.from_yatai_s3_bucket_name.is_some() {
            let s3 = yatai_store::objects::S3Config {
                endpoint: args.from_yatai_s3_endpoint.clone().unwrap_or_default(),
                access_key: args.from_yatai_s3_access_key.clone().unwrap_or_default(),
                secret_key: args.from_yatai_s3_secret_key.clone().unwrap_or_default(),
                region: args
                    .from_yatai_s3_region
                    .clone()
                    .unwrap_or_else(|| "us-east-1".into()),
                secure: args.from_yatai_s3_secure.unwrap_or(true),
                bucket: args
                    .from_yatai_s3_bucket_name
                    .clone()
                    .unwrap_or_else(|| "yatai".into()),
            };
            Some(
                ObjectStorage::open(&yatai_store::ObjectStorageConfig::S3(s3))
                    .await
                    .map_err(|e| anyhow::anyhow!("the Yatai 1.x bucket: {e}"))?,
            )
        } else {
            None
        };
    let db = storage.connect().await?;
    // A dry run writes nothing: without a schema in the target, it counts against an empty
    // temporary database instead.
    let mut scratch_dir = None;
    let db = if args.dry_run && sqlx_has_no_schema(&db).await {
        let scratch = tempfile_dir()?;
        let url = format!("sqlite://{}?mode=rwc", scratch.join("dry-run.db").display());
        scratch_dir = Some(scratch);
        let d = Db::connect(&url).await?;
        d.migrate().await?;
        d
    } else {
        if !args.dry_run {
            db.migrate().await?;
        }
        db
    };
    let objects = ObjectStorage::open(&storage.objects).await?;
    let options = yatai_ops::import::ImportOptions {
        dry_run: args.dry_run,
    };
    let source = yatai_ops::import::source_name(&args.from_yatai_postgres);
    let result = yatai_ops::import::import(
        &legacy,
        legacy_objects.as_ref(),
        &source,
        &db,
        &objects,
        &options,
        progress(),
    )
    .await;
    db.close().await;
    if let Some(dir) = scratch_dir {
        let _ = std::fs::remove_dir_all(dir);
    }
    let s = result?;
    println!(
        "{} from Yatai 1.x at {source}: {}; {} archives ({}){}{}; {} records already here; {:.1} s",
        if args.dry_run {
            "dry run, would import"
        } else {
            "imported"
        },
        s.describe(),
        s.archives_copied,
        yatai_ops::util::human_bytes(s.archive_bytes),
        if args.dry_run { " to copy" } else { " copied" },
        if s.archives_missing.is_empty() {
            String::new()
        } else {
            format!(
                "; {} archives missing in the source bucket: {}",
                s.archives_missing.len(),
                s.archives_missing.join(", ")
            )
        },
        s.existing,
        s.elapsed.as_secs_f64()
    );
    Ok(())
}

async fn sqlx_has_no_schema(db: &Db) -> bool {
    !yatai_ops::restore::has_schema(db).await
}

fn tempfile_dir() -> anyhow::Result<std::path::PathBuf> {
    let dir = std::env::temp_dir().join(format!("yatai-import-dry-run-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}

async fn serve(cfg: config::Serve) -> anyhow::Result<()> {
    let started = Instant::now();
    let transmission_strategy = cfg
        .transmission_strategy
        .as_deref()
        .unwrap_or("proxy")
        .parse()?;
    let db = open_db(&cfg.storage).await?;
    let objects = ObjectStorage::open(&cfg.storage.objects).await?;
    let listener = tokio::net::TcpListener::bind((cfg.host.as_str(), cfg.port))
        .await
        .with_context(|| format!("cannot listen on {}:{}", cfg.host, cfg.port))?;
    let addr = listener.local_addr()?;
    let link_host = if addr.ip().is_unspecified() {
        "127.0.0.1".to_string()
    } else {
        addr.ip().to_string()
    };
    let public_url = cfg
        .public_url
        .clone()
        .unwrap_or_else(|| format!("http://{link_host}:{}", addr.port()));
    let initialization_token = cfg
        .initialization_token
        .clone()
        .unwrap_or_else(|| yatai_server::auth::secrets::new_secret(""));
    let mut uploads = yatai_server::UploadTimings::default();
    if let Some(secs) = cfg.upload_stale_after {
        anyhow::ensure!(secs > 0, "--upload-stale-after must be at least 1 second");
        uploads.proxy_stale_after = std::time::Duration::from_secs(secs);
        uploads.heartbeat = uploads
            .heartbeat
            .min(std::time::Duration::from_secs(secs).div_f32(3.0));
    }
    if let Some(secs) = cfg.presigned_upload_stale_after {
        anyhow::ensure!(
            secs > 0,
            "--presigned-upload-stale-after must be at least 1 second"
        );
        uploads.presigned_stale_after = std::time::Duration::from_secs(secs);
    }
    if let Some(secs) = cfg.janitor_interval {
        anyhow::ensure!(secs > 0, "--janitor-interval must be at least 1 second");
        uploads.janitor_interval = std::time::Duration::from_secs(secs);
    }
    let image_builder = cfg.registry.clone().map(|registry| {
        yatai_image_builder::install_crypto_provider();
        tracing::info!(
            registry = %registry.repository_uri(false),
            "image builds enabled: the server builds bento images itself"
        );
        std::sync::Arc::new(image::InServerBuilder {
            registry,
            base_image: cfg.image_builder_base_image.clone(),
            timeout: std::time::Duration::from_secs(3600),
        }) as std::sync::Arc<dyn yatai_service::registry::images::ImageBuilder>
    });
    let settings = Settings {
        initialization_token: initialization_token.clone(),
        secure_cookies: public_url.starts_with("https://"),
        public_url: public_url.clone(),
        transmission_strategy,
        uploads,
        image_builder,
        read_cache_bytes: cfg
            .read_cache_mb
            .map(|mb| usize::try_from(mb.saturating_mul(1 << 20)).unwrap_or(usize::MAX))
            .unwrap_or(Settings::default().read_cache_bytes),
        ..Settings::default()
    };
    let state = AppState::new(db.clone(), objects, settings);
    tracing::info!(
        database = %yatai_store::db::redact_url(&cfg.storage.database_url),
        objects = %state.objects.describe(),
        transmission_strategy = transmission_strategy.as_str(),
        startup_ms = started.elapsed().as_millis() as u64,
        "Yatai is listening on {public_url}"
    );
    println!("Yatai is listening on {public_url}");
    if !yatai_server::api::setup::is_completed(&state).await? {
        println!("Setup is open: create the first admin at {public_url}/setup?token={initialization_token}");
    }
    // Deployments: the runtimes of the clusters, and the reconciler that makes them match
    // the database (after a restart too).
    let runtimes = std::sync::Arc::new(deployments::ServerRuntimes::new(
        state.svc.clone(),
        cfg.local_deployments.clone(),
    ));
    if let Some(local) = &cfg.local_deployments {
        tracing::info!(dir = %local.dir.display(), envs = %local.envs_dir.display(), host = %local.bind_host, "local deployments run on this machine");
    }
    state.runtimes.set(runtimes.clone());
    let reconciler = yatai_service::deployments::spawn_reconciler(state.svc.clone());
    let served = yatai_server::serve(listener, state).await;
    reconciler.abort();
    runtimes.shutdown().await;
    served?;
    db.close().await;
    Ok(())
}
