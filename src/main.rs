//! The `switchyard` command line.

use std::path::PathBuf;
use std::process::ExitCode;

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;

use clap::{Parser, Subcommand};
use serde_json::Value;
use switchyard::config::Config;
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

#[derive(Subcommand)]
enum Command {
    /// Run the proxy.
    Run {
        /// Path to proxy.toml.
        #[arg(short, long, default_value = "proxy.toml")]
        config: PathBuf,
    },
    /// Check a config file and print what it sets up, without running.
    Check {
        #[arg(short, long, default_value = "proxy.toml")]
        config: PathBuf,
    },
    /// Show the live route table of a running proxy.
    Routes {
        #[arg(short, long, default_value = "proxy.toml")]
        config: PathBuf,
        /// Print the proxy's JSON answer instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Show clusters, virtual brokers and past flips of a running proxy.
    Status {
        #[arg(short, long, default_value = "proxy.toml")]
        config: PathBuf,
        #[arg(long)]
        json: bool,
    },
    /// Move a topic's traffic (or, with --group, a consumer group's
    /// coordinator and committed offsets) to another cluster, now.
    Flip {
        /// The exact topic name.
        #[arg(required_unless_present = "group")]
        topic: Option<String>,
        /// Move this consumer group instead of a topic.
        #[arg(long, conflicts_with_all = ["topic", "produce_only", "fetch_only"])]
        group: Option<String>,
        /// The cluster to move it to.
        #[arg(long)]
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
        #[arg(short, long, default_value = "proxy.toml")]
        config: PathBuf,
        #[arg(long)]
        json: bool,
    },
    /// Write a consumer group's committed offsets into one cluster's own
    /// offset space, so its clients can leave the proxy for that cluster.
    Detach {
        /// The exact group id. Its members must be stopped.
        group: String,
        /// The cluster the group's clients will talk to directly.
        #[arg(long)]
        cluster: String,
        #[arg(short, long, default_value = "proxy.toml")]
        config: PathBuf,
        #[arg(long)]
        json: bool,
    },
    /// Manage the users clients authenticate as.
    User {
        #[command(subcommand)]
        action: UserCommand,
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

/// Exit codes: the command was refused or aborted by the proxy.
const EXIT_REFUSED: u8 = 1;
/// The config could not be used.
const EXIT_CONFIG: u8 = 2;
/// The proxy's admin socket did not answer.
const EXIT_UNREACHABLE: u8 = 3;

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("SWITCHYARD_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let path = match &cli.command {
        // The only command that needs no config.
        Command::User {
            action:
                UserCommand::Add {
                    name,
                    mechanism,
                    iterations,
                },
        } => return user_add(name, mechanism, *iterations),
        Command::Run { config }
        | Command::Check { config }
        | Command::Routes { config, .. }
        | Command::Status { config, .. }
        | Command::Flip { config, .. }
        | Command::Detach { config, .. } => config,
    };
    let config = match Config::load(path) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    match cli.command {
        Command::User { .. } => unreachable!("returned before the config was loaded"),
        Command::Routes { json, .. } => {
            admin_command(&config, AdminRequest::Routes, json, print_routes)
        }
        Command::Status { json, .. } => {
            admin_command(&config, AdminRequest::Status, json, print_status)
        }
        Command::Detach {
            group,
            cluster,
            json,
            ..
        } => {
            let request = AdminRequest::Detach { group, cluster };
            admin_command(&config, request, json, print_detach)
        }
        Command::Flip {
            group: Some(group),
            to,
            json,
            ..
        } => {
            let request = AdminRequest::FlipGroup { group, to };
            admin_command(&config, request, json, print_group_move)
        }
        Command::Flip {
            topic,
            to,
            produce_only,
            fetch_only,
            mirrored,
            json,
            ..
        } => {
            let side = if produce_only {
                Side::ProduceOnly
            } else if fetch_only {
                Side::FetchOnly
            } else {
                Side::Both
            };
            let Some(topic) = topic else {
                eprintln!("error: name a topic to flip, or --group GROUP");
                return ExitCode::from(EXIT_CONFIG);
            };
            let request = AdminRequest::Flip {
                topic,
                to,
                side,
                mirrored,
            };
            admin_command(&config, request, json, print_flip)
        }
        Command::Check { .. } => {
            println!(
                "config ok: bootstrap {}, {} clusters ({}), default route '{}', {} topic rules",
                config.proxy.listen,
                config.clusters.len(),
                config
                    .clusters
                    .iter()
                    .map(|c| c.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
                config.cluster(config.routes.default).name,
                config.routes.topics.len()
            );
            println!("{}", security_summary(&config));
            ExitCode::SUCCESS
        }
        Command::Run { .. } => {
            let runtime = match tokio::runtime::Runtime::new() {
                Ok(r) => r,
                Err(e) => {
                    eprintln!("error: cannot start the async runtime: {e}");
                    return ExitCode::FAILURE;
                }
            };
            match runtime.block_on(switchyard::runtime::server::run(config)) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("error: {e:#}");
                    ExitCode::FAILURE
                }
            }
        }
    }
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

/// Sends one request to the running proxy's admin socket and prints the
/// answer: raw JSON with `--json`, else through `print`.
fn admin_command(config: &Config, request: AdminRequest, raw: bool, print: fn(&Value)) -> ExitCode {
    let path = &config.proxy.admin_socket;
    let answer = (|| -> std::io::Result<(Value, Answer)> {
        let mut stream = UnixStream::connect(path)?;
        let mut line = serde_json::to_vec(&request).map_err(std::io::Error::other)?;
        line.push(b'\n');
        stream.write_all(&line)?;
        let mut line = String::new();
        BufReader::new(stream).read_line(&mut line)?;
        let value: Value = serde_json::from_str(&line).map_err(std::io::Error::other)?;
        let answer = serde_json::from_value(value.clone()).map_err(std::io::Error::other)?;
        Ok((value, answer))
    })();
    let answer = match answer {
        Ok(a) => a,
        Err(e) => {
            eprintln!(
                "error: no answer from the proxy's admin socket {} ({e}); is `switchyard run` running with this config?",
                path.display()
            );
            return ExitCode::from(EXIT_UNREACHABLE);
        }
    };
    let (value, answer) = answer;
    if raw {
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
        println!(
            "  {}: produce {} -> {}, fetch {} -> {}",
            text(&f["topic"]),
            text(&f["from"]["produce"]),
            text(&f["to"]["produce"]),
            text(&f["from"]["fetch"]),
            text(&f["to"]["fetch"])
        );
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

fn print_flip(result: &Value) {
    let topic = text(&result["topic"]);
    if result["changed"].as_bool() != Some(true) {
        println!("'{topic}' already routes there; nothing to do");
        return;
    }
    let (steps, total) = steps_of(result);
    println!(
        "flipped '{topic}': produce {} -> {}, fetch {} -> {} in {total:.0} ms ({steps})",
        text(&result["from"]["produce"]),
        text(&result["to"]["produce"]),
        text(&result["from"]["fetch"]),
        text(&result["to"]["fetch"]),
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
