//! The window editing one firewall rule (`ui/firewall-rule.ui`): action, where to (anywhere,
//! an address, the DNS servers), protocol with ports or ICMP type, comment. Each field is
//! checked when Save is pressed and its error shown at its row; a good rule goes to `done`.

use relm4::adw;
use relm4::adw::prelude::*;
use relm4::gtk;

use super::rule::{self, Proto, Rule};
use crate::i18n::tr;
use crate::resources::ui_object;

/// The open rule window (public for tests: they fill it as a person would).
#[derive(Clone)]
pub struct RuleDialog {
    /// The window.
    pub window: adw::Window,
    /// Allow / Block.
    pub action: adw::ComboRow,
    /// Anywhere / an address / the DNS servers.
    pub destination: adw::ComboRow,
    /// The address.
    pub address: adw::EntryRow,
    /// Any / TCP / UDP / ICMP.
    pub proto: adw::ComboRow,
    /// Port or range.
    pub ports: adw::EntryRow,
    /// ICMP type.
    pub icmp: adw::EntryRow,
    /// Comment.
    pub comment: adw::EntryRow,
    /// Save.
    pub save: gtk::Button,
    errors: Vec<(adw::EntryRow, gtk::Label)>,
}

fn strings(texts: &[String]) -> gtk::StringList {
    gtk::StringList::new(&texts.iter().map(String::as_str).collect::<Vec<_>>())
}

impl RuleDialog {
    /// Opens the window over `parent` with `rule` in it (a new rule: `None`); `done` gets the
    /// rule when Save is pressed and every field is right.
    pub fn open(
        parent: Option<&gtk::Window>,
        rule: Option<&Rule>,
        done: impl Fn(Rule) + 'static,
    ) -> RuleDialog {
        let builder =
            gtk::Builder::from_resource(&format!("{}/ui/firewall-rule.ui", crate::resources::BASE));
        let d = RuleDialog {
            window: ui_object(&builder, "window"),
            action: ui_object(&builder, "action"),
            destination: ui_object(&builder, "destination"),
            address: ui_object(&builder, "address"),
            proto: ui_object(&builder, "proto"),
            ports: ui_object(&builder, "ports"),
            icmp: ui_object(&builder, "icmp"),
            comment: ui_object(&builder, "comment"),
            save: ui_object(&builder, "save"),
            errors: Vec::new(),
        };
        let mut d = d;
        for row in [&d.address, &d.ports, &d.icmp, &d.comment] {
            let label = gtk::Label::builder()
                .visible(false)
                .wrap(true)
                .max_width_chars(28)
                .build();
            label.add_css_class("error");
            row.add_suffix(&label);
            d.errors.push((row.clone(), label));
        }
        d.window.set_transient_for(parent);
        d.window.set_title(Some(&if rule.is_some() {
            tr("Edit firewall rule")
        } else {
            tr("New firewall rule")
        }));
        d.action
            .set_model(Some(&strings(&[tr("Allow"), tr("Block")])));
        d.destination.set_model(Some(&strings(&[
            tr("Anywhere"),
            tr("An address"),
            tr("The DNS servers"),
        ])));
        d.proto.set_model(Some(&strings(&[
            tr("Any"),
            "TCP".into(),
            "UDP".into(),
            "ICMP".into(),
        ])));
        let r = rule.cloned().unwrap_or(Rule {
            accept: true,
            ..Rule::default()
        });
        d.action.set_selected(if r.accept { 0 } else { 1 });
        d.destination.set_selected(if r.dns {
            2
        } else if r.host.is_some() {
            1
        } else {
            0
        });
        d.address.set_text(r.host.as_deref().unwrap_or_default());
        d.proto.set_selected(match r.proto {
            None => 0,
            Some(Proto::Tcp) => 1,
            Some(Proto::Udp) => 2,
            Some(Proto::Icmp) => 3,
        });
        d.ports.set_text(&match r.ports {
            Some((a, b)) if a == b => a.to_string(),
            Some((a, b)) => format!("{a}-{b}"),
            None => String::new(),
        });
        d.icmp
            .set_text(&r.icmp_type.map(|t| t.to_string()).unwrap_or_default());
        d.comment.set_text(r.comment.as_deref().unwrap_or_default());
        d.follow_choices();
        {
            let d2 = d.clone();
            d.destination
                .connect_selected_notify(move |_| d2.follow_choices());
            let d2 = d.clone();
            d.proto
                .connect_selected_notify(move |_| d2.follow_choices());
        }
        {
            let d2 = d.clone();
            let expire = r.expire;
            d.save.connect_clicked(move |_| {
                if let Some(mut rule) = d2.read() {
                    rule.expire = expire;
                    done(rule);
                    d2.window.close();
                }
            });
        }
        crate::widgets::close_on_escape(&d.window);
        d.window.present();
        d
    }

    /// Only the fields that apply are shown: the address for "an address", ports for TCP and
    /// UDP, a type for ICMP.
    fn follow_choices(&self) {
        self.address.set_visible(self.destination.selected() == 1);
        let proto = self.proto.selected();
        self.ports.set_visible(matches!(proto, 1 | 2));
        self.icmp.set_visible(proto == 3);
    }

    /// Shows `error` at `row` (or clears it).
    fn mark(&self, row: &adw::EntryRow, error: Option<&str>) {
        for (r, label) in &self.errors {
            if r == row {
                label.set_text(error.unwrap_or_default());
                label.set_visible(error.is_some());
                if error.is_some() {
                    r.add_css_class("error");
                } else {
                    r.remove_css_class("error");
                }
            }
        }
    }

    /// What an entry row says now under its title (its error), for tests.
    pub fn error_of(&self, row: &adw::EntryRow) -> Option<String> {
        self.errors
            .iter()
            .find(|(r, l)| r == row && l.is_visible())
            .map(|(_, l)| l.text().to_string())
    }

    /// The rule the fields describe, or `None` with the errors shown at their rows.
    fn read(&self) -> Option<Rule> {
        let mut ok = true;
        let mut check = |row: &adw::EntryRow, result: Result<(), String>| match result {
            Ok(()) => self.mark(row, None),
            Err(e) => {
                self.mark(row, Some(&e));
                ok = false;
            }
        };
        let proto = match self.proto.selected() {
            1 => Some(Proto::Tcp),
            2 => Some(Proto::Udp),
            3 => Some(Proto::Icmp),
            _ => None,
        };
        let mut r = Rule {
            accept: self.action.selected() == 0,
            dns: self.destination.selected() == 2,
            proto,
            ..Rule::default()
        };
        if self.destination.selected() == 1 {
            let a = rule::address(&self.address.text());
            check(&self.address, a.clone().map(drop));
            r.host = a.ok();
        } else {
            self.mark(&self.address, None);
        }
        if matches!(proto, Some(Proto::Tcp | Proto::Udp)) && !self.ports.text().trim().is_empty() {
            let p = rule::ports(&self.ports.text());
            check(&self.ports, p.clone().map(drop));
            r.ports = p.ok();
        } else {
            self.mark(&self.ports, None);
        }
        if proto == Some(Proto::Icmp) && !self.icmp.text().trim().is_empty() {
            let t = rule::icmp_type(&self.icmp.text());
            check(&self.icmp, t.clone().map(drop));
            r.icmp_type = t.ok();
        } else {
            self.mark(&self.icmp, None);
        }
        let c = rule::comment(&self.comment.text());
        check(&self.comment, c.clone().map(drop));
        r.comment = c.ok().flatten();
        ok.then_some(r)
    }
}
