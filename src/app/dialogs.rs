//! The dialogs the window opens, and what it does with their answers: settings windows, create,
//! remove, clone, and the template / network change of several qubes. The dialogs are relm4
//! components whose outputs come back as [`Msg`]s; the work they ask for runs here, off the
//! main thread.

use relm4::adw::prelude::*;
use relm4::prelude::*;

use super::feeds::spawn_work;
use super::{App, Msg};
use crate::dialogs::bulk::{BulkDialog, BulkInit, BulkOutput};
use crate::dialogs::clone::{CloneDialog, CloneInit, CloneOutput};
use crate::dialogs::create::{CreateChoices, CreateDialog, CreateInit, CreateOutput};
use crate::dialogs::remove::{RemoveDialog, RemoveInit, RemoveOutput};
use crate::i18n::tr;
use crate::settings::{Settings, Target};

impl App {
    /// Opens a settings window over this one.
    pub(super) fn settings_window(&self, target: Target) -> Controller<Settings> {
        let dialog = Settings::builder()
            .launch((self.client.clone(), target))
            .forward(&self.input, |out| match out {
                // A renamed qube's settings open under its new name.
                crate::settings::SettingsOutput::Renamed(new) => Msg::OpenSettingsOf(new),
            });
        dialog.widget().set_transient_for(Some(&self.window()));
        dialog.widget().present();
        dialog
    }

    /// Opens the settings of the selected qube, or of the row at `pos`.
    pub(super) fn open_settings(&mut self, pos: Option<u32>) {
        let vm = pos
            .and_then(|p| self.table.get_visible(p).map(|r| r.borrow().name.clone()))
            .or_else(|| self.single());
        if let Some(vm) = vm.filter(|v| v != "dom0") {
            self.settings = Some(self.settings_window(Target::Qube(vm)));
        }
    }

    /// Opens the create dialog.
    pub(super) fn open_create(&mut self, input: &relm4::Sender<Msg>) {
        let mut taken: Vec<String> = self.infos.keys().cloned().collect();
        taken.sort();
        let init = CreateInit {
            client: self.client.clone(),
            choices: CreateChoices {
                labels: self.label_order.clone(),
                colours: self.colors.clone(),
                templates: self.templates(),
                dvm_templates: self.qubes_where(|i| i.flag("template_for_dispvms")),
                networked: self.network_providers(),
                taken,
            },
            parent: self.window(),
        };
        self.create = Some(
            CreateDialog::builder()
                .launch(init)
                .forward(input, Msg::Created),
        );
    }

    /// A qube was created: open its settings if asked.
    pub(super) fn on_created(&mut self, created: CreateOutput) {
        let CreateOutput::Created {
            name,
            open_settings,
        } = created;
        if open_settings {
            self.settings = Some(self.settings_window(Target::Qube(name)));
        }
    }

    /// Asks to remove the selected qube.
    pub(super) fn open_remove(&mut self, input: &relm4::Sender<Msg>) {
        let Some(vm) = self.single() else {
            return;
        };
        self.remove_for = Some(vm.clone());
        let init = RemoveInit {
            client: self.client.clone(),
            vm,
            parent: self.window(),
        };
        self.remove = Some(
            RemoveDialog::builder()
                .launch(init)
                .forward(input, Msg::RemoveChosen),
        );
    }

    /// Removes the qube the user confirmed; a refusal gets a message of its own.
    pub(super) fn on_remove(&mut self, chosen: RemoveOutput, input: &relm4::Sender<Msg>) {
        let RemoveOutput::Remove(vm) = chosen;
        spawn_work(&self.client, input, move |c| {
            c.call("admin.vm.Remove", &vm, "", b"").err().map(|e| {
                Msg::Failed(
                    tr("Removing %s failed").replacen("%s", &vm, 1),
                    crate::errors::describe(&e),
                )
            })
        });
    }

    /// Asks for a name and clones the selected qube.
    pub(super) fn open_clone(&mut self, input: &relm4::Sender<Msg>) {
        let Some(src) = self.single() else {
            return;
        };
        self.clone_of = Some(src.clone());
        let info = self.infos.get(&src);
        let init = CloneInit {
            kind: info.map_or(crate::qube_icons::QubeKind::App, |i| i.kind()),
            label: info
                .and_then(|i| i.props.get("label"))
                .map(|p| p.value.clone())
                .unwrap_or_default(),
            labels: self
                .label_order
                .iter()
                .map(|l| (l.clone(), self.color_of()(l)))
                .collect(),
            src,
            taken: self.infos.keys().cloned().collect(),
            client: self.client.clone(),
            parent: self.window(),
        };
        self.clone = Some(
            CloneDialog::builder()
                .launch(init)
                .forward(input, Msg::CloneChosen),
        );
    }

    /// Clones in the background; progress goes to the status line, a failure to a message;
    /// the copy's settings open afterwards if asked.
    pub(super) fn on_clone(&mut self, chosen: CloneOutput, input: &relm4::Sender<Msg>) {
        self.clone = None;
        let CloneOutput::Clone {
            src,
            dst,
            label,
            pool,
            open_settings,
        } = chosen;
        let to = input.clone();
        spawn_work(&self.client, input, move |c| {
            let progress = |t: String| to.emit(Msg::Progress(Some(t)));
            let options = crate::clone::CloneOptions {
                class: None,
                label: Some(label),
                pool,
            };
            let result = crate::clone::clone_qube(c, &src, &dst, &options, &progress);
            to.emit(Msg::Progress(None));
            match result {
                Err(e) => Some(Msg::Failed(
                    tr("Cannot clone %s").replacen("%s", &src, 1),
                    e,
                )),
                Ok(()) if open_settings => Some(Msg::OpenSettingsOf(dst)),
                Ok(()) => None,
            }
        });
    }

    /// Asks for one template for the selected app qubes.
    pub(super) fn open_change_template(&mut self, input: &relm4::Sender<Msg>) {
        let qubes = self.with_template();
        if qubes.is_empty() {
            return;
        }
        let choices = self
            .templates()
            .into_iter()
            .map(|t| (Some(t.clone()), t))
            .collect();
        self.open_bulk(tr("Change template"), "template", choices, qubes, input);
    }

    /// Asks for one network qube for the selected qubes that have one.
    pub(super) fn open_change_netvm(&mut self, input: &relm4::Sender<Msg>) {
        let qubes = self.with_netvm();
        if qubes.is_empty() {
            return;
        }
        let mut choices = vec![(None, tr("default")), (Some(String::new()), tr("none"))];
        choices.extend(
            self.network_providers()
                .into_iter()
                .map(|n| (Some(n.clone()), n)),
        );
        self.open_bulk(tr("Change network qube"), "netvm", choices, qubes, input);
    }

    fn open_bulk(
        &mut self,
        heading: String,
        prop: &'static str,
        choices: Vec<crate::dialogs::bulk::Choice>,
        qubes: Vec<String>,
        input: &relm4::Sender<Msg>,
    ) {
        let init = BulkInit {
            heading,
            prop,
            choices,
            qubes,
            parent: self.window(),
        };
        self.bulk = Some(
            BulkDialog::builder()
                .launch(init)
                .forward(input, Msg::BulkChosen),
        );
    }

    /// Applies the choice to every qube; the failures, one line per qube, in one message. When
    /// all went through, a toast says so and offers to put the old values back.
    pub(super) fn on_bulk(&mut self, chosen: BulkOutput, input: &relm4::Sender<Msg>) {
        let BulkOutput::Apply {
            prop,
            value,
            qubes,
            heading,
        } = chosen;
        // What each qube had, as the table knows it (a default stays a default on undo).
        let before: Vec<(String, Option<String>)> = qubes
            .iter()
            .filter_map(|vm| {
                let p = self.infos.get(vm)?.props.get(prop)?;
                Some((vm.clone(), (!p.is_default).then(|| p.value.clone())))
            })
            .collect();
        let what = match prop {
            "template" => crate::i18n::tr_n(
                "Template of %d qube changed",
                "Template of %d qubes changed",
                qubes.len(),
            ),
            _ => crate::i18n::tr_n(
                "Network qube of %d qube changed",
                "Network qube of %d qubes changed",
                qubes.len(),
            ),
        };
        spawn_work(&self.client, input, move |c| {
            let failures = crate::dialogs::bulk::apply_to_all(c, &qubes, prop, &value);
            Some(if failures.is_empty() {
                Msg::BulkDone { what, prop, before }
            } else {
                Msg::Failed(
                    tr("%s: not every qube changed").replacen("%s", &heading, 1),
                    failures.join("\n"),
                )
            })
        });
    }

    /// Puts back each qube's value from before a change of several qubes.
    pub(super) fn undo_bulk(
        &mut self,
        prop: &'static str,
        before: Vec<(String, Option<String>)>,
        input: &relm4::Sender<Msg>,
    ) {
        spawn_work(&self.client, input, move |c| {
            let failures: Vec<String> = before
                .iter()
                .flat_map(|(vm, value)| {
                    crate::dialogs::bulk::apply_to_all(c, std::slice::from_ref(vm), prop, value)
                })
                .collect();
            (!failures.is_empty()).then(|| Msg::Failed(tr("Undo failed"), failures.join("\n")))
        });
    }

    /// The qubes of the selection a template change applies to.
    fn with_template(&self) -> Vec<String> {
        self.selected_where(|i| i.class == "AppVM")
    }

    /// The qubes of the selection a network change applies to.
    pub(super) fn with_netvm(&self) -> Vec<String> {
        self.selected_where(|i| i.class != "AdminVM" && i.props.contains_key("netvm"))
    }

    /// Whether the selection has a qube whose template can change.
    pub(super) fn can_change_template(&self) -> bool {
        !self.with_template().is_empty()
    }
}

impl App {
    /// The About window: what this is, its version, licence and the people behind it.
    pub(super) fn about(&self) {
        let about = relm4::adw::AboutWindow::builder()
            .transient_for(&self.window())
            .modal(true)
            .application_name(tr("Qube Manager"))
            .application_icon("org.qubes_os.QubeManager")
            .version(env!("CARGO_PKG_VERSION"))
            .comments(tr(
                "See and manage the qubes of a Qubes OS system: their state, use of CPU, memory and disk, settings and lifecycle.",
            ))
            .website("https://www.qubes-os.org/")
            .issue_url("https://github.com/QubesOS/qubes-issues/issues")
            .license_type(relm4::gtk::License::Gpl20)
            .developer_name(tr("Qubes OS management stack developers"))
            // Translators: your names, one per line, to be credited in the About window.
            .translator_credits(tr("translator-credits"))
            .build();
        about.present();
    }
}
