//! qrexec policy: parse `/etc/qubes/policy.d` (and legacy R4.0 files), evaluate requests.

pub mod admin;
pub mod agent;
pub mod daemon;
pub mod eval;
pub mod exec;
pub mod explain;
pub mod loader;
pub mod parser;
pub mod pathres;
pub mod rule;
pub mod sysinfo;
pub mod token;

pub use eval::{
    Denied, QubeInfo, Request, Resolution, SystemInfo, Target, allow_output, evaluate, first_match,
};
pub use parser::{Action, ErrorKind, Params, PolicyError, Rule, load_policy_dirs, parse_str};
pub use token::{Context, Token};
