//! Qube tokens of policy rules and requests, and where each may appear
//! (qrexec-policy.md §1.4).

use std::fmt;

/// Where a token is parsed; decides which forms are valid.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Context {
    /// Column 3 of a rule.
    Source,
    /// Column 4 of a rule.
    Target,
    /// `target=` and `default_target=`.
    Redirect,
    /// What the caller asked for.
    Intended,
}

impl Context {
    fn name(self) -> &'static str {
        match self {
            Context::Source => "source",
            Context::Target => "target",
            Context::Redirect => "redirect",
            Context::Intended => "intended target",
        }
    }
}

/// A parsed token.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Token {
    /// `*`: any qube including dom0.
    Any,
    /// `@anyvm`: any qube but dom0.
    AnyVm,
    /// `@adminvm`.
    AdminVm,
    /// `@default`.
    Default,
    /// `@dispvm`.
    DispVm,
    /// `@dispvm:NAME` (or `@dispvm:uuid:…`).
    DispVmFor(String),
    /// `@dispvm:@tag:T`.
    DispVmTag(String),
    /// `@tag:T`.
    Tag(String),
    /// `@type:T`.
    Type(String),
    /// A qube name or `uuid:<uuid>` (not validated).
    Literal(String),
}

/// dom0's uuid, which also spells dom0.
pub const DOM0_UUID: &str = "uuid:00000000-0000-0000-0000-000000000000";

/// Whether a literal spells dom0.
pub fn is_dom0_literal(s: &str) -> bool {
    s == "dom0" || s == DOM0_UUID
}

/// Python `repr()` of a string, as the reference's messages embed it.
pub use qubes_api::exc::py_repr;

impl Token {
    /// Parses `s` for `ctx`; the error is the reference's message.
    pub fn parse(s: &str, ctx: Context) -> Result<Token, String> {
        use Context::*;
        let invalid = || Err(format!("invalid {} token: {}", ctx.name(), py_repr(s)));
        let value = |prefix: &str, v: &str| -> Result<String, String> {
            if v.is_empty() {
                return Err(format!("invalid empty {prefix} token: {}", py_repr(s)));
            }
            if v.starts_with('@') {
                return Err(format!("invalid {} token: {}", ctx.name(), py_repr(s)));
            }
            Ok(v.to_string())
        };
        let (token, allowed): (Token, &[Context]) = if s == "*" {
            (Token::Any, &[Source, Target])
        } else if s == "@anyvm" {
            (Token::AnyVm, &[Source, Target])
        } else if s == "@adminvm" {
            (Token::AdminVm, &[Source, Target, Redirect, Intended])
        } else if s == "@default" {
            (Token::Default, &[Target, Intended])
        } else if s == "@dispvm" {
            (Token::DispVm, &[Target, Redirect, Intended])
        } else if let Some(v) = s.strip_prefix("@dispvm:@tag:") {
            (
                Token::DispVmTag(value("@dispvm:@tag:", v)?),
                &[Source, Target],
            )
        } else if let Some(v) = s.strip_prefix("@dispvm:") {
            (
                Token::DispVmFor(value("@dispvm:", v)?),
                &[Source, Target, Redirect, Intended],
            )
        } else if let Some(v) = s.strip_prefix("@tag:") {
            (Token::Tag(value("@tag:", v)?), &[Source, Target])
        } else if let Some(v) = s.strip_prefix("@type:") {
            (Token::Type(value("@type:", v)?), &[Source, Target])
        } else if s.starts_with('@') {
            return invalid();
        } else {
            (
                Token::Literal(s.to_string()),
                &[Source, Target, Redirect, Intended],
            )
        };
        if allowed.contains(&ctx) {
            Ok(token)
        } else {
            invalid()
        }
    }
}

impl fmt::Display for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Token::Any => f.write_str("*"),
            Token::AnyVm => f.write_str("@anyvm"),
            Token::AdminVm => f.write_str("@adminvm"),
            Token::Default => f.write_str("@default"),
            Token::DispVm => f.write_str("@dispvm"),
            Token::DispVmFor(x) => write!(f, "@dispvm:{x}"),
            Token::DispVmTag(t) => write!(f, "@dispvm:@tag:{t}"),
            Token::Tag(t) => write!(f, "@tag:{t}"),
            Token::Type(t) => write!(f, "@type:{t}"),
            Token::Literal(l) => f.write_str(l),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Context::*;

    #[test]
    fn contexts() {
        assert_eq!(Token::parse("*", Source), Ok(Token::Any));
        assert!(Token::parse("*", Redirect).is_err());
        assert_eq!(
            Token::parse("@default", Source),
            Err("invalid source token: '@default'".into())
        );
        assert_eq!(
            Token::parse("@dispvm", Source),
            Err("invalid source token: '@dispvm'".into())
        );
        assert_eq!(
            Token::parse("@tag:x", Redirect),
            Err("invalid redirect token: '@tag:x'".into())
        );
        assert_eq!(
            Token::parse("@tag:", Target),
            Err("invalid empty @tag: token: '@tag:'".into())
        );
        assert!(Token::parse("@tag:@x", Target).is_err());
        assert_eq!(
            Token::parse("@tag:a:b", Target),
            Ok(Token::Tag("a:b".into()))
        );
        assert_eq!(
            Token::parse("@dispvm:@tag:t", Target),
            Ok(Token::DispVmTag("t".into()))
        );
        assert!(Token::parse("@dispvm:@type:x", Target).is_err());
        assert!(Token::parse("@invalid", Target).is_err());
        assert!(Token::parse("@DISPVM", Target).is_err());
        assert_eq!(
            Token::parse("$anyvm", Source),
            Ok(Token::Literal("$anyvm".into()))
        );
        assert_eq!(
            Token::parse("@dispvm:x", Intended),
            Ok(Token::DispVmFor("x".into()))
        );
        assert!(Token::parse("@anyvm", Intended).is_err());
    }
}
