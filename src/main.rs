//! The `switchyard` command line: `run` and `check` read the config; the
//! admin commands only find the admin socket and talk to the running proxy
//! (a typed client of `ops::admin`).

mod logging;

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::{Args, CommandFactory, Parser, Subcommand, ValueEnum};
use serde_json::{json, Value};
use switchyard::config::{Config, ConfigError, LogFormat, Problem, NODE_ID_SPAN};
use switchyard::ops::admin::{AdminRequest, Answer};
use switchyard::ops::flip::Side;

#[derive(Parser)]
#[command(
    name = "switchyard",
    version,
    about = "Kafka proxy for moving clients between clusters, one topic at a time"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// The config file, for the commands that read all of it.
#[derive(Args)]
struct ConfigArg {
    /// Path to the proxy's config file (proxy.toml). Relative paths in it
    /// (state_file, admin_socket) are taken from its directory.
    #[arg(short, long, value_name = "PATH", default_value = "proxy.toml")]
    config: PathBuf,
}

/// How an admin command reaches the running proxy.
#[derive(Args)]
struct AdminArgs {
    /// Path to the proxy's config file. Only its [proxy] admin_socket is
    /// read; the rest is not checked, so a half-edited file never blocks a
    /// command. Not read at all with --socket or SWITCHYARD_SOCKET.
    #[arg(short, long, value_name = "PATH", default_value = "proxy.toml")]
    config: PathBuf,
    /// The running proxy's admin socket; wins over the config file.
    #[arg(long, value_name = "PATH", env = "SWITCHYARD_SOCKET")]
    socket: Option<PathBuf>,
    /// Give up waiting for the proxy's answer after this many seconds
    /// (exit code 3); a flip or move already started still completes in the
    /// proxy. Default: 30 for routes and status, 120 for flip and detach.
    #[arg(long, value_name = "SECONDS", value_parser = seconds)]
    timeout: Option<Duration>,
    /// Print the proxy's answer as it sent it, one JSON object
    /// ({"ok":…,"result":…} or {"ok":false,"error":…}), for scripts.
    #[arg(long)]
    json: bool,
}

#[derive(Subcommand)]
enum Command {
    /// Run the proxy.
    Run {
        #[command(flatten)]
        config: ConfigArg,
        /// How to write the log to stderr: text (coloured only on a
        /// terminal) or json (one object a line). Wins over [proxy]
        /// log_format.
        #[arg(long, value_enum, value_name = "FORMAT")]
        log_format: Option<LogFormatArg>,
    },
    /// Check a config file as `run` would, listing every problem (exit code
    /// 2 if there is any), and print what it sets up.
    Check {
        #[command(flatten)]
        config: ConfigArg,
        /// Print one JSON object: {"ok":…,"problems":[{"key":…,"message":…}],…}
        /// and, when ok, a summary of the setup.
        #[arg(long)]
        json: bool,
        /// Also log in to every cluster as the proxy would (TLS, SASL),
        /// list its brokers and check the virtual node ids they would get.
        #[arg(long)]
        connect: bool,
    },
    /// Show the live route table of a running proxy.
    Routes {
        #[command(flatten)]
        admin: AdminArgs,
    },
    /// Show clusters, virtual brokers and past flips of a running proxy.
    Status {
        #[command(flatten)]
        admin: AdminArgs,
        /// Redraw the status in place every --interval seconds, until
        /// interrupted (Ctrl-C); a proxy that does not answer is shown as
        /// such and asked again.
        #[arg(long, conflicts_with = "json")]
        watch: bool,
        /// Seconds between redraws with --watch.
        #[arg(long, value_name = "SECONDS", default_value = "2", value_parser = seconds, requires = "watch")]
        interval: Duration,
    },
    /// Move a topic's traffic (or, with --group, a consumer group's
    /// coordinator and committed offsets) to another cluster, now.
    Flip {
        /// The exact topic name.
        #[arg(required_unless_present_any = ["group", "groups", "topics", "topics_file"])]
        topic: Option<String>,
        /// Move every topic matching this glob (e.g. 'payments.*') on the
        /// clusters it leaves, in one fence and one record: all or none.
        #[arg(long, value_name = "PATTERN", conflicts_with_all = ["topic", "topics_file"])]
        topics: Option<String>,
        /// Move the topics named in FILE (one per line; blank lines and
        /// '#' comments skipped), in one fence and one record: all or none.
        #[arg(long, value_name = "FILE", conflicts_with_all = ["topic", "topics"])]
        topics_file: Option<PathBuf>,
        /// Move this consumer group instead of a topic.
        #[arg(long, value_name = "GROUP", conflicts_with_all = ["topic", "topics", "topics_file", "groups", "produce_only", "fetch_only"])]
        group: Option<String>,
        /// Move every consumer group matching this glob on the clusters
        /// it leaves, in one hold and one record: all or none.
        #[arg(long, value_name = "PATTERN", conflicts_with_all = ["topic", "topics", "topics_file", "produce_only", "fetch_only", "mirrored"])]
        groups: Option<String>,
        /// The cluster to move it to.
        #[arg(long, value_name = "CLUSTER")]
        to: String,
        /// Move only Produce (consumers keep reading the old cluster).
        #[arg(long, conflicts_with = "fetch_only")]
        produce_only: bool,
        /// Move only Fetch.
        #[arg(long)]
        fetch_only: bool,
        /// MirrorMaker 2 copies the topic to the target: wait for its copy
        /// to catch up and stitch after it.
        #[arg(long, conflicts_with = "fetch_only")]
        mirrored: bool,
        /// Print what the flip would do now (the topic it would create,
        /// the stitch points it would record; for a group, the offsets it
        /// would copy) and do nothing: no fence, no change.
        #[arg(long)]
        dry_run: bool,
        #[command(flatten)]
        admin: AdminArgs,
    },
    /// Write a consumer group's committed offsets into one cluster's own
    /// offset space, so its clients can leave the proxy for that cluster.
    Detach {
        /// The exact group id. Its members must be stopped.
        group: String,
        /// The cluster the group's clients will talk to directly.
        #[arg(long, value_name = "CLUSTER")]
        cluster: String,
        #[command(flatten)]
        admin: AdminArgs,
    },
    /// Make a running proxy read its config file again and apply what
    /// can change without dropping a client (users and their allow-lists,
    /// certificates, cluster TLS and SASL settings, topic route rules, new
    /// clusters); a change that cannot apply live is refused with the
    /// reason, and nothing changes. SIGHUP does the same.
    Reload {
        #[command(flatten)]
        admin: AdminArgs,
    },
    /// Manage the users clients authenticate as.
    User {
        #[command(subcommand)]
        action: UserCommand,
    },
    /// Print a shell completion script, e.g.
    /// `switchyard completions bash > /etc/bash_completion.d/switchyard`.
    Completions {
        /// The shell to complete for.
        shell: clap_complete::Shell,
    },
}

#[derive(Subcommand)]
enum UserCommand {
    /// Read a password from stdin and print the [[users]] block for
    /// proxy.toml (salted and hashed; the password itself is not in it).
    Add {
        /// The user name clients log in with.
        name: String,
        /// SCRAM-SHA-512, SCRAM-SHA-256 or PLAIN (every mechanism can also
        /// log in with PLAIN).
        #[arg(long, default_value = "SCRAM-SHA-512")]
        mechanism: String,
        /// PBKDF2 iterations (4096..=16384).
        #[arg(long, default_value_t = switchyard::auth::credentials::DEFAULT_ITERATIONS)]
        iterations: u32,
    },
}

#[derive(Clone, Copy, ValueEnum)]
enum LogFormatArg {
    Text,
    Json,
}

impl From<LogFormatArg> for LogFormat {
    fn from(f: LogFormatArg) -> LogFormat {
        match f {
            LogFormatArg::Text => LogFormat::Text,
            LogFormatArg::Json => LogFormat::Json,
        }
    }
}

/// Exit codes: the command was refused or aborted by the proxy, or `run`
/// could not start (a port in use, say).
const EXIT_REFUSED: u8 = 1;
/// The config could not be used, or the admin socket could not be found
/// from it.
const EXIT_CONFIG: u8 = 2;
/// The proxy's admin socket did not answer (in time).
const EXIT_UNREACHABLE: u8 = 3;

/// How long the admin commands that only read wait by default.
const READ_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a flip, group move or detach is waited for by default: their
/// steps are bounded in the proxy (a mirrored flip waits up to a minute for
/// MirrorMaker), and a fleet flip adds the instances' confirmations.
const CHANGE_TIMEOUT: Duration = Duration::from_secs(120);

fn main() -> ExitCode {
    let cli = Cli::parse();
    // `run` sets its log up once it knows the format; the rest log text.
    if !matches!(cli.command, Command::Run { .. }) {
        logging::init(LogFormat::Text);
    }
    match cli.command {
        Command::Run { config, log_format } => run(&config.config, log_format.map(Into::into)),
        Command::Check {
            config,
            json,
            connect,
        } => check(&config.config, json, connect),
        Command::Completions { shell } => {
            let mut command = Cli::command();
            clap_complete::generate(shell, &mut command, "switchyard", &mut std::io::stdout());
            ExitCode::SUCCESS
        }
        Command::User {
            action:
                UserCommand::Add {
                    name,
                    mechanism,
                    iterations,
                },
        } => user_add(&name, &mechanism, iterations),
        Command::Routes { admin } => {
            admin_command(&admin, AdminRequest::Routes, READ_TIMEOUT, print_routes)
        }
        Command::Status {
            admin,
            watch: true,
            interval,
        } => watch_status(&admin, interval),
        Command::Status { admin, .. } => {
            admin_command(&admin, AdminRequest::Status, READ_TIMEOUT, print_status)
        }
        Command::Reload { admin } => {
            admin_command(&admin, AdminRequest::Reload, READ_TIMEOUT, print_reload)
        }
        Command::Detach {
            group,
            cluster,
            admin,
        } => {
            let request = AdminRequest::Detach { group, cluster };
            admin_command(&admin, request, CHANGE_TIMEOUT, print_detach)
        }
        Command::Flip {
            group: Some(group),
            to,
            dry_run,
            admin,
            ..
        } => {
            let request = AdminRequest::FlipGroup { group, to, dry_run };
            let print = if dry_run {
                print_group_preview
            } else {
                print_group_move
            };
            admin_command(&admin, request, CHANGE_TIMEOUT, print)
        }
        Command::Flip {
            groups: Some(pattern),
            to,
            dry_run,
            admin,
            ..
        } => {
            let request = AdminRequest::FlipGroups {
                pattern,
                to,
                dry_run,
            };
            let print = if dry_run {
                print_group_previews
            } else {
                print_group_moves
            };
            admin_command(&admin, request, CHANGE_TIMEOUT, print)
        }
        Command::Flip {
            topic,
            topics,
            topics_file,
            to,
            produce_only,
            fetch_only,
            mirrored,
            dry_run,
            admin,
            ..
        } => {
            let side = if produce_only {
                Side::ProduceOnly
            } else if fetch_only {
                Side::FetchOnly
            } else {
                Side::Both
            };
            if topics.is_some() || topics_file.is_some() {
                let listed = match topics_file.as_deref().map(topics_in).transpose() {
                    Ok(listed) => listed.unwrap_or_default(),
                    Err(e) => {
                        eprintln!("error: {e}");
                        return ExitCode::from(EXIT_CONFIG);
                    }
                };
                let request = AdminRequest::FlipTopics {
                    pattern: topics,
                    topics: listed,
                    to,
                    side,
                    mirrored,
                    dry_run,
                };
                let print = if dry_run { print_previews } else { print_flips };
                return admin_command(&admin, request, CHANGE_TIMEOUT, print);
            }
            let Some(topic) = topic else {
                eprintln!("error: name a topic to flip, or --group GROUP");
                return ExitCode::from(EXIT_CONFIG);
            };
            let request = AdminRequest::Flip {
                topic,
                to,
                side,
                mirrored,
                dry_run,
            };
            let print = if dry_run { print_preview } else { print_flip };
            admin_command(&admin, request, CHANGE_TIMEOUT, print)
        }
    }
}

/// `switchyard run`: config problems exit 2 (each listed), a failure to
/// start 1.
fn run(path: &Path, flag: Option<LogFormat>) -> ExitCode {
    let config = match load(path) {
        Ok(c) => c,
        Err(e) => {
            let format = flag.unwrap_or_default();
            logging::init(format);
            report_problems(format, path, &e);
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    let format = flag.unwrap_or(config.proxy.log_format);
    logging::init(format);
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => {
            logging::fatal(format, &format!("cannot start the async runtime: {e}"));
            return ExitCode::from(EXIT_REFUSED);
        }
    };
    match runtime.block_on(switchyard::runtime::server::run(config)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            logging::fatal(format, &format!("{e:#}"));
            ExitCode::from(EXIT_REFUSED)
        }
    }
}

/// The config file checked as `run` needs it: validated, the files and
/// variables it names read ([`Config::load`]), and then the TLS and SASL
/// set-up of both sides built once, which finds what reading each file
/// alone cannot (a key that does not fit its certificate, say).
fn load(path: &Path) -> Result<Config, ConfigError> {
    let config = Config::load(path)?;
    let mut problems = Vec::new();
    if let Err(e) = switchyard::auth::ClientSecurity::from_config(&config) {
        problems.extend(e.problems());
    }
    for cluster in &config.clusters {
        if let Err(e) = switchyard::upstream::security::UpstreamSecurity::from_config(cluster) {
            problems.extend(e.problems());
        }
    }
    if problems.is_empty() {
        Ok(config)
    } else {
        Err(ConfigError::Problems(problems))
    }
}

/// Every problem of a config that cannot be used, one a line (or one log
/// event each), and what to do next.
fn report_problems(format: LogFormat, path: &Path, e: &ConfigError) {
    let problems = e.problems();
    for p in &problems {
        match format {
            LogFormat::Json => tracing::error!(key = %p.key, "{}", p.message),
            LogFormat::Text => eprintln!("error: {p}"),
        }
    }
    let summary = format!(
        "{} cannot be used: {} problem{} (`switchyard check -c {}` lists them)",
        path.display(),
        problems.len(),
        if problems.len() == 1 { "" } else { "s" },
        path.display()
    );
    match format {
        LogFormat::Json => tracing::error!("{summary}"),
        LogFormat::Text => eprintln!("{summary}"),
    }
}

/// `switchyard check`: what `run` would refuse, all of it.
fn check(path: &Path, json: bool, connect: bool) -> ExitCode {
    let result = load(path);
    // With --connect, each cluster as the proxy reaches it.
    let reached = match (&result, connect) {
        (Ok(config), true) => match tokio::runtime::Runtime::new() {
            Ok(runtime) => runtime.block_on(switchyard::upstream::reach::reach_all(
                config,
                config.proxy.upstream_connect_timeout * 2,
            )),
            Err(e) => {
                eprintln!("error: cannot start the async runtime: {e}");
                return ExitCode::FAILURE;
            }
        },
        _ => Vec::new(),
    };
    let reach_problems = reached.iter().any(|r| !r.problems.is_empty());
    if json {
        let mut out = json!({
            "ok": result.is_ok() && !reach_problems,
            "config": path.display().to_string(),
            "problems": result.as_ref().err().map_or_else(Vec::new, ConfigError::problems),
        });
        if let (Ok(config), Some(map)) = (&result, out.as_object_mut()) {
            if let Value::Object(summary) = summary_json(config) {
                map.extend(summary);
            }
            if connect {
                map.insert("connect".into(), json!(reached));
            }
        }
        println!("{out}");
    } else {
        match &result {
            Ok(config) => {
                println!("{}", summary_text(config));
                for r in &reached {
                    print_reached(r);
                }
            }
            Err(e) => {
                let problems: Vec<Problem> = e.problems();
                for p in &problems {
                    eprintln!("error: {p}");
                }
                eprintln!(
                    "{}: {} problem{}; `switchyard run` would refuse this config",
                    path.display(),
                    problems.len(),
                    if problems.len() == 1 { "" } else { "s" }
                );
            }
        }
    }
    match result {
        Ok(_) if !reach_problems => ExitCode::SUCCESS,
        _ => ExitCode::from(EXIT_CONFIG),
    }
}

/// One cluster as `check --connect` reached it.
fn print_reached(r: &switchyard::upstream::reach::Reached) {
    if r.ok {
        let brokers: Vec<String> = r
            .brokers
            .iter()
            .map(|(id, virtual_id)| format!("{id} (virtual {virtual_id})"))
            .collect();
        println!(
            "cluster {}: reached and logged in; brokers {}",
            r.cluster,
            brokers.join(", ")
        );
    }
    for p in &r.problems {
        eprintln!("error: {p}");
    }
}

/// Node ids and ports a cluster's virtual brokers get, first and last.
fn virtual_range(config: &Config, base: i32) -> ((i64, i64), (i64, i64)) {
    let ids = (
        i64::from(base),
        i64::from(base) + i64::from(NODE_ID_SPAN) - 1,
    );
    let port_base = i64::from(config.proxy.broker_port_base);
    (ids, (port_base + ids.0, port_base + ids.1))
}

fn summary_text(config: &Config) -> String {
    let p = &config.proxy;
    let mut lines = vec![format!(
        "config ok: bootstrap {}, {} clusters ({}), default route '{}', {} topic rules",
        p.listen,
        config.clusters.len(),
        config
            .clusters
            .iter()
            .map(|c| c.name.as_str())
            .collect::<Vec<_>>()
            .join(", "),
        config.cluster(config.routes.default).name,
        config.routes.topics.len()
    )];
    for c in &config.clusters {
        let ((first, last), (lo, hi)) = virtual_range(config, c.node_id_base);
        lines.push(format!(
            "cluster {}: virtual node ids {first}..={last} on ports {lo}..={hi}",
            c.name
        ));
    }
    lines.push(format!(
        "admin socket {}, state file {}",
        p.admin_socket.display(),
        p.state_file.display()
    ));
    lines.push(security_summary(config));
    lines.join("\n")
}

fn summary_json(config: &Config) -> Value {
    let p = &config.proxy;
    let clusters: Vec<Value> = config
        .clusters
        .iter()
        .map(|c| {
            let (ids, ports) = virtual_range(config, c.node_id_base);
            json!({
                "name": c.name,
                "bootstrap": c.bootstrap,
                "node_id_base": c.node_id_base,
                "virtual_node_ids": [ids.0, ids.1],
                "virtual_ports": [ports.0, ports.1],
                "tls": c.tls.is_some(),
                "sasl": c.sasl.as_ref().map(|s| s.mechanism.name()),
            })
        })
        .collect();
    json!({
        "listen": p.listen.to_string(),
        "metrics_listen": p.metrics_listen.map(|m| m.to_string()),
        "admin_socket": p.admin_socket.display().to_string(),
        "state_file": p.state_file.display().to_string(),
        "clusters": clusters,
        "default_route": config.cluster(config.routes.default).name,
        "topic_rules": config.routes.topics.len(),
        "client_tls": p.tls.is_some(),
        "client_sasl": p.sasl.as_ref().map(|s| s.mechanisms.iter().map(|m| m.name()).collect::<Vec<_>>()),
        "users": config.users.len(),
    })
}

/// What `check` says about TLS and SASL, on both sides; names and
/// mechanisms only.
fn security_summary(config: &Config) -> String {
    let p = &config.proxy;
    let tls = match &p.tls {
        None => "no TLS".to_owned(),
        Some(t) if t.client_ca.is_some() => "TLS with client certificates".to_owned(),
        Some(_) => "TLS".to_owned(),
    };
    let sasl = match &p.sasl {
        None => "no SASL".to_owned(),
        Some(s) => format!(
            "SASL {} for {} users",
            s.mechanisms
                .iter()
                .map(|m| m.name())
                .collect::<Vec<_>>()
                .join("/"),
            config.users.len()
        ),
    };
    let mut lines = vec![format!("clients: {tls}, {sasl}")];
    for c in &config.clusters {
        let tls = if c.tls.is_some() { "TLS" } else { "no TLS" };
        let sasl = c.sasl.as_ref().map_or("no SASL".to_owned(), |s| {
            format!("SASL {} as '{}'", s.mechanism, s.username)
        });
        lines.push(format!("cluster {}: {tls}, {sasl}", c.name));
    }
    lines.join("\n")
}

/// `switchyard user add`: the password comes from stdin (one line), so it
/// never shows in the process list or the shell history.
fn user_add(name: &str, mechanism: &str, iterations: u32) -> ExitCode {
    use switchyard::auth::credentials::{users_block, Credential, Mechanism};
    use switchyard::auth::scram::{MAX_ITERATIONS, MIN_ITERATIONS};
    let mechanism: Mechanism = match mechanism.parse() {
        Ok(m) => m,
        Err(e) => {
            eprintln!("error: --mechanism: {e}");
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    if !(MIN_ITERATIONS..=MAX_ITERATIONS).contains(&iterations) {
        eprintln!("error: --iterations must be within {MIN_ITERATIONS}..={MAX_ITERATIONS}");
        return ExitCode::from(EXIT_CONFIG);
    }
    if name.is_empty() {
        eprintln!("error: the user name must not be empty");
        return ExitCode::from(EXIT_CONFIG);
    }
    let mut password = zeroize::Zeroizing::new(String::new());
    if let Err(e) = std::io::stdin().read_line(&mut password) {
        eprintln!("error: cannot read the password from stdin: {e}");
        return ExitCode::FAILURE;
    }
    let password = password.trim_end_matches(['\n', '\r']);
    if password.is_empty() {
        eprintln!(
            "error: no password on stdin; e.g. `read -rs PW && printf '%s\\n' \"$PW\" | switchyard user add {name}`"
        );
        return ExitCode::from(EXIT_CONFIG);
    }
    let credential = Credential::generate(mechanism, password, iterations);
    print!("{}", users_block(name, &credential));
    ExitCode::SUCCESS
}

/// `--timeout`: seconds, fractions allowed, more than zero.
fn seconds(text: &str) -> Result<Duration, String> {
    let s: f64 = text
        .parse()
        .map_err(|_| format!("'{text}' is not a number of seconds"))?;
    if !(s > 0.0 && s.is_finite()) {
        return Err("must be more than 0 seconds".to_owned());
    }
    Duration::try_from_secs_f64(s).map_err(|e| e.to_string())
}

/// Where the admin socket is: `--socket` or SWITCHYARD_SOCKET, else the
/// config file's `[proxy] admin_socket` (read loosely), else the default.
/// Also says where the path came from, for the errors.
fn find_socket(args: &AdminArgs) -> Result<(PathBuf, String), String> {
    if let Some(socket) = args.socket.as_ref().filter(|s| !s.as_os_str().is_empty()) {
        return Ok((socket.clone(), "--socket or SWITCHYARD_SOCKET".to_owned()));
    }
    match switchyard::config::admin_socket_of(&args.config) {
        Ok(socket) => Ok((
            socket,
            format!("proxy.admin_socket of {}", args.config.display()),
        )),
        Err(e) => Err(format!(
            "cannot find the proxy's admin socket: {e}; pass it with --socket PATH (or \
             SWITCHYARD_SOCKET=PATH), e.g. --socket {}",
            switchyard::config::default_admin_socket().display()
        )),
    }
}

/// Why the admin socket gave no answer.
enum Unanswered {
    TimedOut,
    Io(std::io::Error),
    /// The answer is not the admin socket's JSON.
    Garbled(String),
}

impl From<std::io::Error> for Unanswered {
    fn from(e: std::io::Error) -> Unanswered {
        match e.kind() {
            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut => Unanswered::TimedOut,
            _ => Unanswered::Io(e),
        }
    }
}

/// One request and its answer line, all within `timeout`.
fn ask(path: &Path, request: &AdminRequest, timeout: Duration) -> Result<Value, Unanswered> {
    let deadline = Instant::now() + timeout;
    let mut stream = connect(path, timeout)?;
    let left = |deadline: Instant| {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            Err(Unanswered::TimedOut)
        } else {
            Ok(left)
        }
    };
    let mut line = serde_json::to_vec(request).map_err(|e| Unanswered::Garbled(e.to_string()))?;
    line.push(b'\n');
    stream.set_write_timeout(Some(left(deadline)?))?;
    stream.write_all(&line)?;
    let mut answer = Vec::new();
    let mut chunk = [0u8; 16 * 1024];
    while !answer.contains(&b'\n') {
        stream.set_read_timeout(Some(left(deadline)?))?;
        match stream.read(&mut chunk) {
            Ok(0) if answer.is_empty() => {
                return Err(Unanswered::Garbled(
                    "the proxy closed the connection without answering".to_owned(),
                ))
            }
            Ok(0) => break,
            Ok(n) => answer.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e.into()),
        }
    }
    let end = answer
        .iter()
        .position(|b| *b == b'\n')
        .unwrap_or(answer.len());
    serde_json::from_slice(&answer[..end]).map_err(|e| Unanswered::Garbled(e.to_string()))
}

/// Connecting to a Unix socket blocks while its listener's backlog is full
/// (a wedged proxy); std has no connect timeout for them, so a thread
/// connects and this waits for it at most `timeout`.
fn connect(path: &Path, timeout: Duration) -> Result<UnixStream, Unanswered> {
    let (tx, rx) = std::sync::mpsc::channel();
    let target = path.to_owned();
    std::thread::spawn(move || {
        let _ = tx.send(UnixStream::connect(target));
    });
    match rx.recv_timeout(timeout) {
        Ok(result) => Ok(result?),
        Err(_) => Err(Unanswered::TimedOut),
    }
}

/// Sends one request to the running proxy's admin socket and prints the
/// answer: raw JSON with `--json`, else through `print`. `timeout`: how
/// long to wait when `--timeout` is not given.
fn admin_command(
    args: &AdminArgs,
    request: AdminRequest,
    timeout: Duration,
    print: fn(&Value),
) -> ExitCode {
    let timeout = args.timeout.unwrap_or(timeout);
    let (path, source) = match find_socket(args) {
        Ok(found) => found,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    let changes = !matches!(request, AdminRequest::Routes | AdminRequest::Status);
    let value = match ask(&path, &request, timeout) {
        Ok(v) => v,
        Err(e) => {
            eprintln!(
                "error: {}",
                unanswered(&e, &path, &source, timeout, changes)
            );
            return ExitCode::from(EXIT_UNREACHABLE);
        }
    };
    let answer: Answer = match serde_json::from_value(value.clone()) {
        Ok(a) => a,
        Err(e) => {
            eprintln!(
                "error: the admin socket {} answered {value}, which is not an admin answer ({e})",
                path.display()
            );
            return ExitCode::from(EXIT_UNREACHABLE);
        }
    };
    if args.json {
        println!("{value}");
    } else if answer.ok {
        print(answer.result.as_ref().unwrap_or(&Value::Null));
    } else {
        eprintln!(
            "error: {}",
            answer.error.as_deref().unwrap_or("unknown error")
        );
    }
    if answer.ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(EXIT_REFUSED)
    }
}

/// What to tell the operator when the socket gave no answer: what was
/// tried, why it failed, and what to do.
fn unanswered(
    e: &Unanswered,
    path: &Path,
    source: &str,
    timeout: Duration,
    changes: bool,
) -> String {
    let at = format!(
        "the proxy's admin socket {} (from {source})",
        path.display()
    );
    match e {
        Unanswered::TimedOut => {
            let still = if changes {
                "; the proxy may still complete the command: see `switchyard status` and \
                 `switchyard routes`"
            } else {
                ""
            };
            format!(
                "no answer from {at} within {} s (--timeout){still}",
                timeout.as_secs_f64()
            )
        }
        Unanswered::Io(io) => {
            let hint = match io.kind() {
                std::io::ErrorKind::NotFound => {
                    "no such socket: is `switchyard run` running, with this config? Pass its \
                     socket with --socket PATH"
                }
                std::io::ErrorKind::ConnectionRefused => {
                    "nothing listens there (a socket file left by a proxy that stopped)"
                }
                std::io::ErrorKind::PermissionDenied => {
                    "the socket is for the proxy's user and group only; run as one of them"
                }
                _ => "is `switchyard run` running, with this config?",
            };
            format!("cannot talk to {at}: {io}; {hint}")
        }
        Unanswered::Garbled(why) => format!("no usable answer from {at}: {why}"),
    }
}

fn text(v: &Value) -> &str {
    v.as_str().unwrap_or("?")
}

fn print_routes(result: &Value) {
    println!("default: {}", text(&result["default"]));
    for r in result["routes"].as_array().into_iter().flatten() {
        println!(
            "{:<30} produce={:<10} fetch={:<10} ({})",
            text(&r["pattern"]),
            text(&r["produce"]),
            text(&r["fetch"]),
            text(&r["source"])
        );
    }
    for g in result["groups"].as_array().into_iter().flatten() {
        println!(
            "group {:<24} coordinator={:<10} ({})",
            text(&g["pattern"]),
            text(&g["cluster"]),
            text(&g["source"])
        );
    }
}

/// `status --watch`: the status redrawn in place every `every`, with the
/// time of the last redraw, until the process is interrupted.
fn watch_status(args: &AdminArgs, every: Duration) -> ExitCode {
    let (path, source) = match find_socket(args) {
        Ok(found) => found,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    let timeout = args.timeout.unwrap_or(READ_TIMEOUT);
    loop {
        // Cursor home, screen cleared: each view replaces the last.
        print!("\x1b[H\x1b[2J");
        match ask(&path, &AdminRequest::Status, timeout) {
            Ok(value) => match serde_json::from_value::<Answer>(value) {
                Ok(answer) if answer.ok => {
                    print_status(answer.result.as_ref().unwrap_or(&Value::Null))
                }
                Ok(answer) => println!("error: {}", answer.error.unwrap_or_default()),
                Err(e) => println!("error: the admin socket's answer is not an admin answer ({e})"),
            },
            Err(e) => println!("error: {}", unanswered(&e, &path, &source, timeout, false)),
        }
        println!(
            "\nstatus at {} UTC, every {}s; Ctrl-C to stop",
            time_of_day(),
            every.as_secs_f64()
        );
        let _ = std::io::stdout().flush();
        std::thread::sleep(every);
    }
}

/// The time of day now, UTC, as HH:MM:SS.
fn time_of_day() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
        % 86_400;
    format!("{:02}:{:02}:{:02}", secs / 3600, secs / 60 % 60, secs % 60)
}

fn print_status(result: &Value) {
    println!(
        "cluster id {} on {}",
        text(&result["cluster_id"]),
        text(&result["listen"])
    );
    for c in result["clusters"].as_array().into_iter().flatten() {
        let state = if c["reachable"].as_bool() == Some(true) {
            "reachable"
        } else {
            "UNREACHABLE"
        };
        println!("cluster {} ({state})", text(&c["name"]));
        if let Some(e) = c["last_error"].as_str() {
            println!("  last error: {e}");
        }
        for b in c["brokers"].as_array().into_iter().flatten() {
            println!(
                "  broker {} at {} -> virtual broker {} on port {}",
                b["node"],
                text(&b["address"]),
                b["virtual_node"],
                b["port"]
            );
        }
    }
    for i in result["instances"].as_array().into_iter().flatten() {
        let state = if i["live"].as_bool() == Some(true) {
            "live"
        } else {
            "LEASE EXPIRED"
        };
        println!(
            "instance {} at {} ({state}): state applied to offset {}, lease renewed {} ms ago, {} client connections",
            text(&i["instance"]),
            text(&i["address"]),
            i["applied"],
            i["lease_age_ms"],
            i["connections"]
        );
    }
    let flips = result["flips"].as_array().map_or(0, Vec::len);
    println!("flips so far: {flips}");
    for f in result["flips"].as_array().into_iter().flatten() {
        println!("  {}: {}", text(&f["topic"]), route_change(f));
    }
    for m in result["group_moves"].as_array().into_iter().flatten() {
        println!(
            "  group {}: {} -> {}, {} offsets copied",
            text(&m["group"]),
            text(&m["from"]),
            text(&m["to"]),
            m["offsets"]
        );
    }
    match result["drain"].as_array() {
        Some(drains) => {
            for d in drains {
                let state = if d["crossed"].as_bool() == Some(true) {
                    "crossed to the new segment".to_owned()
                } else {
                    format!("draining old: {} records left", d["left"])
                };
                println!(
                    "group {} on {}: {state}",
                    text(&d["group"]),
                    text(&d["topic"])
                );
            }
        }
        None => println!(
            "group progress unknown: {}",
            text(&result["drain"]["error"])
        ),
    }
}

/// A flip's route change: "produce old -> new, fetch old -> new".
fn route_change(flip: &Value) -> String {
    format!(
        "produce {} -> {}, fetch {} -> {}",
        text(&flip["from"]["produce"]),
        text(&flip["to"]["produce"]),
        text(&flip["from"]["fetch"]),
        text(&flip["to"]["fetch"]),
    )
}

/// A flip's or move's steps ("fence 3 ms, …") and their total time.
fn steps_of(result: &Value) -> (String, f64) {
    let steps = result["steps"].as_array().into_iter().flatten();
    let listed: Vec<String> = steps
        .clone()
        .map(|s| {
            format!(
                "{} {:.0} ms",
                text(&s["step"]),
                s["ms"].as_f64().unwrap_or(0.0)
            )
        })
        .collect();
    let total = steps.filter_map(|s| s["ms"].as_f64()).sum();
    (listed.join(", "), total)
}

/// What `flip --dry-run` found.
fn print_group_preview(result: &Value) {
    let group = text(&result["group"]);
    if result["changed"].as_bool() != Some(true) {
        println!("group '{group}' is already coordinated there; a move would do nothing");
        return;
    }
    let offsets = result["offsets"].as_array().map_or(&[][..], Vec::as_slice);
    println!(
        "a move of group '{group}' now would copy {} committed offsets from '{}' to '{}' and route the group there; nothing was changed",
        offsets.len(),
        text(&result["from"]),
        text(&result["to"]),
    );
    for o in offsets {
        println!(
            "  {}-{}: committed {} (as it stands now; commits before the hold add to it)",
            text(&o["topic"]),
            o["partition"],
            o["offset"]
        );
    }
}

fn print_preview(result: &Value) {
    let topic = text(&result["topic"]);
    if result["changed"].as_bool() != Some(true) {
        println!("'{topic}' already routes there; a flip would do nothing");
        return;
    }
    println!(
        "a flip of '{topic}' now would move {} ({} partitions); nothing was changed",
        route_change(result),
        result["partitions"],
    );
    if let Some(create) = result["create"].as_object() {
        let configs: Vec<String> = create["configs"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|c| format!("{}={}", text(&c[0]), c[1].as_str().unwrap_or("(default)")))
            .collect();
        println!(
            "  it would create the topic on cluster '{}' with {} partitions{}",
            text(&create["cluster"]),
            create["partitions"],
            if configs.is_empty() {
                String::new()
            } else {
                format!(" and configs {}", configs.join(", "))
            }
        );
    }
    if result["mirrored"].as_bool() == Some(true) {
        println!("  the stitch would wait for MirrorMaker 2's copy to catch up");
    }
    for p in result["stitch"].as_array().into_iter().flatten() {
        println!(
            "  partition {}: stitch at old {} / new {} (as the logs stand now; records written before the fence add to it)",
            p["partition"], p["l_old"], p["l_new"]
        );
    }
}

/// The topic names of a `--topics-file`: one per line, blank lines and
/// `#` comments skipped.
fn topics_in(path: &Path) -> Result<Vec<String>, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read topics file {}: {e}", path.display()))?;
    let topics: Vec<String> = text
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .map(str::to_owned)
        .collect();
    if topics.is_empty() {
        return Err(format!("topics file {} names no topic", path.display()));
    }
    Ok(topics)
}

/// What `flip --groups … --dry-run` found: a line per group.
fn print_group_previews(result: &Value) {
    let previews = result.as_array().map_or(&[][..], Vec::as_slice);
    let moving = previews
        .iter()
        .filter(|p| p["changed"].as_bool() == Some(true))
        .count();
    println!(
        "a move now would move {moving} of {} groups, in one hold and one record; nothing was changed",
        previews.len()
    );
    for p in previews {
        println!(
            "  {}",
            group_line(p, p["offsets"].as_array().map_or(0, Vec::len))
        );
    }
}

/// What `flip --groups` did: the batch's steps, then a line per group.
fn print_group_moves(result: &Value) {
    let reports = result["groups"].as_array().map_or(&[][..], Vec::as_slice);
    let moved = reports
        .iter()
        .filter(|r| r["changed"].as_bool() == Some(true))
        .count();
    let (steps, total) = steps_of(result);
    println!(
        "moved {moved} of {} groups in one hold in {total:.0} ms ({steps})",
        reports.len()
    );
    for r in reports {
        let offsets = r["offsets"].as_u64().unwrap_or(0) as usize;
        println!("  {}", group_line(r, offsets));
    }
}

/// One group of a move of many: where it goes, and how many committed
/// offsets go with it.
fn group_line(group: &Value, offsets: usize) -> String {
    let name = text(&group["group"]);
    if group["changed"].as_bool() != Some(true) {
        return format!("'{name}': already coordinated there");
    }
    format!(
        "'{name}': {} -> {}, {offsets} committed offsets",
        text(&group["from"]),
        text(&group["to"])
    )
}

/// What `flip --topics … --dry-run` found: a line per topic.
fn print_previews(result: &Value) {
    let previews = result.as_array().map_or(&[][..], Vec::as_slice);
    let moving = previews
        .iter()
        .filter(|p| p["changed"].as_bool() == Some(true))
        .count();
    let creating = previews.iter().filter(|p| p["create"].is_object()).count();
    println!(
        "a flip now would move {moving} of {} topics ({creating} to be created on the target), in one fence and one record; nothing was changed",
        previews.len()
    );
    for p in previews {
        let topic = text(&p["topic"]);
        if p["changed"].as_bool() != Some(true) {
            println!("  '{topic}': already routes there");
            continue;
        }
        println!(
            "  '{topic}': {}, {} partitions{}",
            route_change(p),
            p["partitions"],
            if p["create"].is_object() {
                ", created on the target"
            } else {
                ""
            }
        );
    }
}

/// What `flip --topics` did: the batch's steps, then a line per topic.
fn print_flips(result: &Value) {
    let reports = result["topics"].as_array().map_or(&[][..], Vec::as_slice);
    let moved = reports
        .iter()
        .filter(|r| r["changed"].as_bool() == Some(true))
        .count();
    let (steps, total) = steps_of(result);
    if moved == 0 {
        println!(
            "all {} topics already route there; nothing to do",
            reports.len()
        );
        return;
    }
    println!(
        "flipped {moved} of {} topics in one fence in {total:.0} ms ({steps})",
        reports.len()
    );
    for r in reports {
        let topic = text(&r["topic"]);
        if r["changed"].as_bool() != Some(true) {
            println!("  '{topic}': already routed there");
            continue;
        }
        println!("  '{topic}': {}", route_change(r));
    }
}

fn print_flip(result: &Value) {
    let topic = text(&result["topic"]);
    if result["changed"].as_bool() != Some(true) {
        println!("'{topic}' already routes there; nothing to do");
        return;
    }
    let (steps, total) = steps_of(result);
    println!(
        "flipped '{topic}': {} in {total:.0} ms ({steps})",
        route_change(result)
    );
    print_instances(result);
}

/// A fleet flip's or group move's id, and each instance's part.
fn print_instances(result: &Value) {
    if let Some(run) = result["run"].as_str() {
        println!("  fleet run {run}");
    }
    for i in result["instances"].as_array().into_iter().flatten() {
        let ms = |v: &Value| {
            v.as_f64()
                .map_or("not confirmed".to_owned(), |ms| format!("{ms:.0} ms"))
        };
        println!(
            "  instance {}: fenced {}, switched {}",
            text(&i["instance"]),
            ms(&i["fence_ms"]),
            ms(&i["switch_ms"])
        );
    }
}

fn print_reload(result: &Value) {
    let changed: Vec<&str> = result["changed"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    if changed.is_empty() {
        println!("config reloaded: no key changed; certificates and password files read again");
    } else {
        println!(
            "config reloaded: {} changed; certificates and password files read again",
            changed.join(", ")
        );
    }
    for cluster in result["added_clusters"].as_array().into_iter().flatten() {
        println!("  cluster '{}' added", text(cluster));
    }
}

fn print_detach(result: &Value) {
    println!(
        "group '{}' detached to cluster '{}':",
        text(&result["group"]),
        text(&result["cluster"])
    );
    for o in result["offsets"].as_array().into_iter().flatten() {
        println!(
            "  {}-{}: committed {} -> {} ({})",
            text(&o["topic"]),
            o["partition"],
            o["committed"],
            o["translated"],
            text(&o["how"])
        );
    }
}

fn print_group_move(result: &Value) {
    let group = text(&result["group"]);
    if result["changed"].as_bool() != Some(true) {
        println!("group '{group}' is already coordinated there; nothing to do");
        return;
    }
    let (steps, total) = steps_of(result);
    println!(
        "moved group '{group}': {} -> {}, {} committed offsets copied, in {total:.0} ms ({steps})",
        text(&result["from"]),
        text(&result["to"]),
        result["offsets"].as_u64().unwrap_or(0),
    );
    print_instances(result);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_command_and_argument_says_what_it_is_for() {
        fn walk(command: &clap::Command, path: &str, missing: &mut Vec<String>) {
            for arg in command.get_arguments() {
                let id = arg.get_id().as_str();
                if id != "help" && id != "version" && arg.get_help().is_none() {
                    missing.push(format!("{path} {id}"));
                }
            }
            for sub in command.get_subcommands() {
                let path = format!("{path} {}", sub.get_name());
                if sub.get_about().is_none() {
                    missing.push(path.clone());
                }
                walk(sub, &path, missing);
            }
        }
        let command = Cli::command();
        command.clone().debug_assert();
        let mut missing = Vec::new();
        walk(&command, "switchyard", &mut missing);
        assert!(missing.is_empty(), "no help text: {missing:?}");
    }

    #[test]
    fn timeouts_are_positive_seconds() {
        assert_eq!(seconds("1.5"), Ok(Duration::from_millis(1500)));
        assert!(seconds("0").is_err());
        assert!(seconds("-3").is_err());
        assert!(seconds("soon").is_err());
    }
}
