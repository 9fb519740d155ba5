//! Policy text to rules: the current format, legacy (R4.0) lines, directives, directories
//! (qrexec-policy.md §1, §2, §4). A bad file is reported with file and line, and nothing of a
//! policy with an error is used. Rule lines are read in [`crate::rule`], files in
//! [`crate::loader`]; this module gathers both under the name the tools have always used.

pub use crate::loader::{
    FileSystem, LoadError, MAX_INCLUDE_DEPTH, Memory, Overlay, Parser, Source,
    counts_as_policy_file, load_policy_dirs, parse_str, valid_policy_file_name,
};
pub use crate::rule::{
    Action, ErrorKind, Params, PolicyError, Rule, validate_service_and_argument,
};

#[cfg(test)]
mod tests {
    use super::*;
    use crate::token::Token;
    use std::path::Path;

    fn err(text: &str) -> String {
        parse_str(text, "f").unwrap_err().to_string()
    }

    #[test]
    fn syntax_errors_match_the_reference() {
        assert_eq!(
            err("test.Service +argument @anyvm @anyvm allow,target=dom0"),
            "f:1: invalid action: allow,target=dom0"
        );
        assert_eq!(
            err("* +arg @anyvm @anyvm allow"),
            "f:1: only * argument allowed for * service"
        );
        assert_eq!(
            err("test.Service +arg @anyvm @default allow"),
            "f:1: allow action for @default rule must specify target= option"
        );
        assert_eq!(
            err("test.Service +arg @dispvm @default allow target=x"),
            "f:1: invalid source token: '@dispvm'"
        );
        assert_eq!(
            err("test.Service +arg @default @default allow target=x"),
            "f:1: invalid source token: '@default'"
        );
        assert_eq!(
            err("test.Service +arg @anyvm @anyvm deny target=test-vm1"),
            "f:1: invalid parameters for action Deny: ['target=test-vm1']"
        );
        assert_eq!(
            err("test.Service +arg @anyvm @anyvm allow target=@tag:tag1"),
            "f:1: invalid redirect token: '@tag:tag1'"
        );
        assert_eq!(
            err("test.Service +arg @anyvm @anyvm allow notify=true"),
            "f:1: 'notify' is 'true', but can be only 'yes' or 'no'"
        );
        assert_eq!(
            err("test.Service +arg @anyvm @anyvm allow notify"),
            "f:1: invalid action parameter syntax: 'notify'"
        );
        assert_eq!(
            err("test.Service +arg @anyvm @anyvm allow # c"),
            "f:1: invalid action parameter syntax: '#'"
        );
        assert_eq!(
            err("test+Service * @anyvm @anyvm allow"),
            "f:1: service 'test+Service' contains invalid characters: ('+',)"
        );
        assert_eq!(
            err("svc ** s d allow"),
            "f:1: argument '**' contains invalid characters: ('*',)"
        );
        assert_eq!(
            err("svc arg s d allow"),
            "f:1: argument 'arg' does not start with +"
        );
        assert_eq!(err("\n\nsvc +a s d"), "f:3: wrong number of fields");
        assert_eq!(err("svc +a s d ALLOW"), "f:1: invalid action: ALLOW");
        assert_eq!(
            err("svc +a s d allow target=x target=y"),
            "f:1: parameter given twice: 'target'"
        );
        assert_eq!(
            err("svc +a s d allow target="),
            "f:1: invalid empty redirect token"
        );
        assert_eq!(err("!include"), "f:1: invalid number of params");
        assert_eq!(err("!frobnicate x"), "f:1: invalid directive");
        assert_eq!(
            err("!include include/nope"),
            "f:1: not a file: /etc/qubes/policy.d/include/nope"
        );
    }

    #[test]
    fn valid_lines() {
        let r = parse_str(
            "# c\n\n  svc +a @anyvm @anyvm allow target=x=y user=  \n",
            "f",
        )
        .unwrap();
        assert_eq!(r.len(), 1);
        match &r[0].action {
            Action::Allow(p) => {
                assert_eq!(p.target, Some(Token::Literal("x=y".into())));
                assert_eq!(p.user.as_deref(), Some(""));
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(r[0].line, Some(3));
        assert!(parse_str("svc +a $anyvm @anyvm deny notify=no", "f").is_ok());
    }

    #[test]
    fn include_service_reads_legacy() {
        let mut mem = Memory::default();
        mem.files.insert(
            "/p/svc".into(),
            "$anyvm $dispvm ask,default_target=$dispvm\n".into(),
        );
        let mut p = Parser::new(&mem, Path::new("/p"));
        p.load_text("!include-service test.S +arg svc", "main", 0)
            .unwrap();
        assert_eq!(p.rules.len(), 1);
        let r = &p.rules[0];
        assert_eq!(
            (r.service.as_deref(), r.argument.as_deref()),
            (Some("test.S"), Some("+arg"))
        );
        assert_eq!((&r.source, &r.target), (&Token::AnyVm, &Token::DispVm));
        assert_eq!(
            r.action,
            Action::Ask(Params {
                default_target: Some(Token::DispVm),
                ..Params::default()
            })
        );
    }

    #[test]
    fn include_cycles_are_errors_not_crashes() {
        let mut mem = Memory::default();
        mem.files
            .insert("/p/include/a".into(), "!include include/b\n".into());
        mem.files
            .insert("/p/include/b".into(), "!include include/a\n".into());
        let mut p = Parser::new(&mem, Path::new("/p"));
        let e = p.load_text("!include include/a", "main", 0).unwrap_err();
        assert_eq!(e.kind, ErrorKind::Crash, "{e}");
        assert!(e.msg.contains("include cycle"), "{e}");
    }
}
