//! qrexec policy: parse `/etc/qubes/policy.d` (and legacy R4.0 files), evaluate requests.

pub mod admin;
pub mod daemon;
pub mod eval;
pub mod exec;
pub mod parser;
pub mod token;

pub use eval::{
    Denied, QubeInfo, Request, Resolution, SystemInfo, Target, allow_output, evaluate, first_match,
};
pub use parser::{Action, Params, PolicyError, Rule, load_policy_dirs, parse_str};
pub use token::{Context, Token};
