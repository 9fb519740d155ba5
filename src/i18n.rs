//! Translations through the system gettext.

use gettextrs::{
    LocaleCategory, bind_textdomain_codeset, bindtextdomain, gettext, ngettext, setlocale,
    textdomain,
};

/// The gettext domain of the GUI.
pub const DOMAIN: &str = "qubes-qube-manager";

/// Sets the locale from the environment and binds the catalogue directory:
/// `QUBES_MANAGER_LOCALEDIR` at run time, else the build-time directory, else the system one.
///
/// Call it at the start of `main`, before any thread is spawned: the locale is state of the
/// whole process, which the C library reads without a lock.
pub fn init() {
    // SAFETY: setlocale is only sound while no other thread uses the C library's locale; every
    // program calls this at the start of main, before it spawns a thread (the contract above).
    unsafe {
        setlocale(LocaleCategory::LcAll, "");
    }
    let dir = std::env::var("QUBES_MANAGER_LOCALEDIR")
        .ok()
        .or_else(|| option_env!("QUBES_MANAGER_LOCALEDIR").map(str::to_string))
        .unwrap_or_else(|| "/usr/share/locale".to_string());
    let _ = bindtextdomain(DOMAIN, dir);
    let _ = bind_textdomain_codeset(DOMAIN, "UTF-8");
    let _ = textdomain(DOMAIN);
}

/// Marks a msgid for extraction (`xgettext --keyword=noop_tr`) where a call to [`tr`] cannot
/// stand (constant tables); the text is translated later with [`tr`].
pub const fn noop_tr(s: &str) -> &str {
    s
}

/// Translates a message.
pub fn tr(msgid: &str) -> String {
    gettext(msgid)
}

/// "default (X)" as the netvm and similar columns show a default value.
pub fn tr_default(value: &str) -> String {
    // Translators: a property that follows the system default; {} is the current value.
    gettext("default ({})").replacen("{}", value, 1)
}

/// "N qubes" with the right plural form.
pub fn tr_count(n: usize) -> String {
    ngettext("%d qube", "%d qubes", n as u32).replacen("%d", &n.to_string(), 1)
}

/// "N of M qubes": how many the table shows of how many there are.
pub fn tr_shown(shown: usize, total: usize) -> String {
    // Translators: %1 qubes shown of %2 in all.
    ngettext("%1 of %2 qube", "%1 of %2 qubes", total as u32)
        .replacen("%1", &shown.to_string(), 1)
        .replacen("%2", &total.to_string(), 1)
}

/// A message with a number in it (`%d`), in the plural form that number takes.
pub fn tr_n(singular: &str, plural: &str, n: usize) -> String {
    ngettext(singular, plural, n as u32).replacen("%d", &n.to_string(), 1)
}
