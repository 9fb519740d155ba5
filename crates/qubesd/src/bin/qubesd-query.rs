//! `qubesd-query`: send one request to qubesd and print the response, like the reference tool.

use std::io::{Read, Write};
use std::path::PathBuf;

use clap::Parser;
use qubes_api::{Response, client};

/// Send one Admin API request and print the answer.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Args {
    /// Socket to connect to.
    #[arg(
        short = 'c',
        long,
        env = "QUBESD_SOCKET",
        default_value = "/var/run/qubesd.sock"
    )]
    connect: PathBuf,
    /// Read the payload from standard input.
    #[arg(short = 'e', long)]
    empty_payload_from_stdin_disabled: bool,
    /// Print the raw response bytes instead of decoding them.
    #[arg(long)]
    raw: bool,
    /// Calling qube.
    src: String,
    /// Method, e.g. admin.vm.List.
    method: String,
    /// Destination qube.
    dest: String,
    /// Argument.
    #[arg(default_value = "")]
    arg: String,
}

fn main() -> std::process::ExitCode {
    let args = Args::parse();
    let mut payload = Vec::new();
    if !args.empty_payload_from_stdin_disabled {
        let _ = std::io::stdin().read_to_end(&mut payload);
    }
    let req = qubes_api::Request::encode(&args.method, &args.arg, &args.src, &args.dest, &payload);
    let raw = match client::call_raw(&args.connect, &req) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("qubesd-query: {}: {e}", args.connect.display());
            return std::process::ExitCode::from(2);
        }
    };
    let mut out = std::io::stdout();
    if args.raw {
        let _ = out.write_all(&raw);
        return std::process::ExitCode::SUCCESS;
    }
    match Response::parse(&raw) {
        Ok(Response::Ok(content)) => {
            let _ = out.write_all(&content);
            std::process::ExitCode::SUCCESS
        }
        Ok(Response::Exception {
            kind,
            message,
            traceback,
            ..
        }) => {
            if !traceback.is_empty() {
                eprint!("{traceback}");
            }
            eprintln!("{kind}: {message}");
            std::process::ExitCode::from(1)
        }
        Ok(Response::Events(events)) => {
            for e in events {
                let _ = writeln!(out, "{} {} {:?}", e.subject, e.name, e.kwargs);
            }
            std::process::ExitCode::SUCCESS
        }
        Ok(Response::Empty) => {
            eprintln!("qubesd-query: empty response (access denied or failure in qubesd)");
            std::process::ExitCode::from(1)
        }
        Err(e) => {
            eprintln!("qubesd-query: {e}");
            std::process::ExitCode::from(2)
        }
    }
}
