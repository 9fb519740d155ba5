//! The window's messages: rows follow the daemon (load, events, statistics, volumes), filters
//! and the view follow the user, and commands go to the modules that carry them out
//! ([`super::actions`], [`super::dialogs`]).

use std::time::Duration;

use relm4::adw;
use relm4::adw::prelude::*;
use relm4::gtk;
use relm4::prelude::*;

use super::feeds::scan_volumes;
use super::{App, Msg};
use crate::i18n::tr;
use crate::loader::Refetch;
use crate::model::{Change, Column};
use crate::settings::Target;
use crate::table::QubeRow;

/// How often rows being filled are sorted again.
const RESORT_EVERY: Duration = Duration::from_millis(500);

impl App {
    /// Handles one message.
    pub(super) fn handle(&mut self, msg: Msg, sender: &ComponentSender<App>) {
        let input = sender.input_sender().clone();
        match msg {
            Msg::Listed(Ok((colors, entries))) => {
                self.label_order = colors.iter().map(|(n, _)| n.clone()).collect();
                self.colors = colors.into_iter().collect();
                let names: std::collections::HashSet<String> =
                    entries.iter().map(|e| e.name.clone()).collect();
                let gone: Vec<String> = self
                    .rows
                    .keys()
                    .filter(|n| !names.contains(*n))
                    .cloned()
                    .collect();
                for g in gone {
                    self.remove(&g);
                }
                // The rows at once, as admin.vm.List describes them; what is known of a qube
                // (after a reconnection) stays until it is read again.
                let mut refilter = crate::table::Refilter {
                    search: false,
                    show: false,
                };
                for e in &entries {
                    let info = match self.infos.get(&e.name) {
                        Some(old) => {
                            let mut info = old.clone();
                            info.class = e.class.clone();
                            info.state = e.state.clone();
                            info
                        }
                        None => crate::model::QubeInfo::new(e, Vec::new()),
                    };
                    refilter = refilter.or(self.upsert_quietly(info));
                }
                self.refilter(refilter);
                self.pending = names;
                self.loaded = self.pending.is_empty();
                self.listed = true;
                self.unreachable = None;
                let first = self.rows_on_screen();
                self.filler.fill(entries, &first);
            }
            Msg::Filled(batch) => {
                // Disk usage and "restart needed" come from the volumes: read them where they
                // are shown (the disk column) or matter (a running qube).
                let disk_shown = crate::table::column_of(&self.table, Column::DiskUsage)
                    .is_some_and(|c| c.is_visible());
                let mut volumes = Vec::new();
                let mut refilter = crate::table::Refilter {
                    search: false,
                    show: false,
                };
                for (vm, info) in batch {
                    if !self.pending.remove(&vm) {
                        // From a listing replaced since.
                        continue;
                    }
                    match info {
                        Some(info) => {
                            let mut info = *info;
                            if let Some(old) = self.infos.get(&vm) {
                                info.disk = old.disk;
                                info.outdated = old.outdated;
                                info.stats = old.stats;
                            }
                            if disk_shown || info.state != "Halted" {
                                volumes.push(vm.clone());
                            }
                            refilter = refilter.or(self.upsert_quietly(info));
                        }
                        None => self.remove(&vm),
                    }
                    if self.filled_first.len() < 256 {
                        self.filled_first.push(vm);
                    }
                }
                self.refilter(refilter);
                self.filler.volumes(volumes);
                self.loaded = self.pending.is_empty();
                // The rows were sorted by what was known when they appeared: sort again now
                // and then while they fill, and once when all are in.
                if self.loaded {
                    self.handle(Msg::Resort, sender);
                } else if !self.resort_due {
                    self.resort_due = true;
                    let input = input.clone();
                    gtk::glib::timeout_add_local_once(RESORT_EVERY, move || {
                        input.emit(Msg::Resort)
                    });
                }
            }
            Msg::Resort => {
                self.resort_due = false;
                if let Some(sorter) = self.table.view.sorter() {
                    sorter.changed(gtk::SorterChange::Different);
                }
            }
            Msg::ViewMoved => self.filler.prefer(&self.rows_on_screen()),
            Msg::Volumes(results) => {
                let mut refilter = crate::table::Refilter {
                    search: false,
                    show: false,
                };
                for (vm, disk, outdated) in results {
                    if let Some(mut info) = self.infos.get(&vm).cloned()
                        && (info.disk != disk || info.outdated != outdated)
                    {
                        info.disk = disk;
                        info.outdated = outdated;
                        refilter = refilter.or(self.upsert_quietly(info));
                    }
                }
                self.refilter(refilter);
            }
            Msg::DiskTick => {
                let running = self.qubes_where(|i| i.state == "Running");
                scan_volumes(&self.client, &input, running);
            }
            Msg::Change(Change::Volumes(vm)) => scan_volumes(&self.client, &input, vec![vm]),
            Msg::ColumnVisible(col, on) => {
                if let Some(c) = crate::table::column_of(&self.table, col) {
                    c.set_visible(on);
                }
                if col == Column::DiskUsage && on {
                    // Disk usage not read yet (it was hidden): now, those on screen first.
                    let unread = self.qubes_where(|i| i.disk.is_none() && i.class != "AdminVM");
                    self.filler.volumes(unread);
                    self.filler.prefer(&self.rows_on_screen());
                }
                let hidden: Vec<Column> = Column::ALL
                    .into_iter()
                    .filter(|c| {
                        crate::table::column_of(&self.table, *c).is_some_and(|c| !c.is_visible())
                    })
                    .collect();
                self.view_state.set_hidden_columns(&hidden);
            }
            Msg::SortChanged => {
                let n = self.table.view.model().map_or(0, |m| m.n_items());
                let rows: Vec<QubeRow> = (0..n)
                    .filter_map(|i| self.table.get_visible(i))
                    .map(|r| r.borrow().clone())
                    .collect();
                if let Some((col, descending)) = crate::table::sorted_by(&rows) {
                    self.view_state.set_sort(col, descending);
                }
                self.filler.prefer(&self.rows_on_screen());
            }
            Msg::Progress(text) => self.progress = text,
            Msg::Listed(Err(e)) | Msg::Error(e) => self.unreachable = Some(e),
            Msg::Qube(info) => {
                self.upsert(info);
            }
            Msg::Property { vm, prop, value } => {
                if let Some(mut info) = self.infos.get(&vm).cloned() {
                    info.props.insert(prop, value);
                    self.upsert(info);
                }
            }
            Msg::Search(text) => {
                *self.search.borrow_mut() = text;
                self.table.notify_filter_changed(0);
                self.filler.prefer(&self.rows_on_screen());
            }
            Msg::Show(show) => {
                self.view_state.set_show(show);
                self.show.set(show);
                self.table.notify_filter_changed(1);
                self.filler.prefer(&self.rows_on_screen());
            }
            Msg::ShowInternal(on) => {
                self.view_state.set_show_internal(on);
                self.show_internal.set(on);
                self.table.notify_filter_changed(1);
            }
            Msg::Change(Change::RefetchFeature { vm, feature }) => {
                let _ = self.refetch.send(Refetch::Feature(vm, feature));
            }
            Msg::Feature { vm, feature, value } => {
                if let Some(mut info) = self.infos.get(&vm).cloned() {
                    match value {
                        Some(v) => info.features.insert(feature, v),
                        None => info.features.remove(&feature),
                    };
                    self.upsert(info);
                }
            }
            Msg::Change(Change::Reload) => {
                let _ = self.refetch.send(Refetch::List);
            }
            Msg::Change(Change::Added(vm)) => {
                let _ = self.refetch.send(Refetch::Qube(vm));
            }
            Msg::Change(Change::Removed(vm)) => {
                self.remove(&vm);
            }
            Msg::Change(Change::Tag { vm, tag, added }) => {
                if let Some(mut info) = self.infos.get(&vm).cloned() {
                    info.set_tag(&tag, added);
                    self.upsert(info);
                }
            }
            Msg::Change(Change::State { vm, state }) => {
                if let Some(mut info) = self.infos.get(&vm).cloned() {
                    if state == "Halted" {
                        info.stats = None;
                        if let Some(row) = self.rows.get(&vm) {
                            row.clear_history();
                        }
                    }
                    let settled = matches!(state.as_str(), "Running" | "Halted");
                    if state == "Halting" && info.state != "Halting" {
                        // A shutdown refused or failed without a word (or an event lost) must
                        // not leave the row "Halting": after the qube's shutdown timeout, ask.
                        let secs = info
                            .props
                            .get("shutdown_timeout")
                            .and_then(|p| p.value.parse::<u64>().ok())
                            .unwrap_or(60)
                            .clamp(1, 3600);
                        let input = input.clone();
                        let vm = vm.clone();
                        gtk::glib::timeout_add_local_once(Duration::from_secs(secs), move || {
                            input.emit(Msg::CheckState(vm, "Halting".into()))
                        });
                    }
                    info.state = state;
                    self.upsert(info);
                    if settled {
                        // Usage changes at start and commit; a template's stop makes its
                        // running qubes outdated.
                        let mut names = vec![vm.clone()];
                        names.extend(self.qubes_where(|i| {
                            i.state == "Running"
                                && i.props.get("template").is_some_and(|t| t.value == vm)
                        }));
                        scan_volumes(&self.client, &input, names);
                    }
                }
            }
            Msg::Change(Change::RefetchState(vm)) => {
                let _ = self.refetch.send(Refetch::State(vm));
            }
            Msg::CheckState(vm, state) => {
                // Still in a state that should have passed: ask the daemon what it holds.
                if self.infos.get(&vm).is_some_and(|i| i.state == state) {
                    let _ = self.refetch.send(Refetch::State(vm));
                }
            }
            Msg::Change(Change::RefetchProperty { vm, prop }) => {
                let _ = self.refetch.send(Refetch::Property(vm, prop));
            }
            Msg::StatsRound(changes) => {
                for c in changes {
                    self.handle(Msg::Change(c), sender);
                }
                self.refresh_usage();
            }
            Msg::ShowUsage(vm) => self.show_usage(vm),
            Msg::Change(Change::Stats { vm, stats }) => {
                // Frequent: touch only the two cells statistics change.
                if let Some(info) = self.infos.get_mut(&vm)
                    && info.state != "Halted"
                    && info.stats != Some(stats)
                {
                    info.stats = Some(stats);
                    if let Some(row) = self.rows.get(&vm) {
                        row.set_cell(Column::Cpu, info.cell(Column::Cpu));
                        row.set_cell(Column::MemUsed, info.cell(Column::MemUsed));
                        row.push_sample(crate::history::now(), stats);
                    }
                    if self.widths.take_grown() {
                        for row in self.rows.values() {
                            row.refit();
                        }
                    }
                }
            }
            Msg::Change(Change::None) => {}
            Msg::SelectName(vm) => self.select(&vm),
            Msg::SelectionChanged => {
                // The selected rows the table shows now: a row that went away (or that a
                // search or the Show choice hides) is no longer acted on.
                let bits = self.table.selection_model.selection();
                self.selected = (0..bits.size())
                    .filter_map(|n| self.table.get_visible(bits.nth(n as u32)))
                    .map(|r| r.borrow().name.clone())
                    .filter(|vm| self.infos.contains_key(vm))
                    .collect();
            }
            Msg::Action(action) => self.on_action(action, &input),
            Msg::Answer(answer) => self.on_answer(answer, &input),
            Msg::OpenSettingsOf(vm) => {
                self.settings = Some(self.settings_window(Target::Qube(vm)));
            }
            Msg::OpenSettings(pos) => self.open_settings(pos),
            Msg::Create => self.open_create(&input),
            Msg::Created(created) => self.on_created(created),
            Msg::Remove => self.open_remove(&input),
            Msg::RemoveChosen(chosen) => self.on_remove(chosen, &input),
            Msg::Clone => self.open_clone(&input),
            Msg::CloneChosen(chosen) => self.on_clone(chosen, &input),
            Msg::ChangeTemplate => self.open_change_template(&input),
            Msg::ChangeNetVm => self.open_change_netvm(&input),
            Msg::BulkChosen(chosen) => self.on_bulk(chosen, &input),
            Msg::BulkDone { what, prop, before } => {
                self.toast(&what, Some((tr("Undo"), Msg::UndoBulk { prop, before })));
            }
            Msg::UndoBulk { prop, before } => self.undo_bulk(prop, before, &input),
            Msg::ShutdownTimedOut(vm) => self.on_timed_out(vm, &input),
            Msg::RunCommand => self.on_run_command(&input),
            Msg::Console => self.on_console(&input),
            Msg::PolicyEditor => {
                crate::policy_editor::open_for(self.window.upcast_ref(), &self.client);
            }
            Msg::About => self.about(),
            Msg::Backup => {
                crate::backup_ui::open_backup(self.window.upcast_ref(), &self.client);
            }
            Msg::Restore => {
                crate::backup_ui::open_restore(self.window.upcast_ref(), &self.client);
            }
            Msg::GlobalSettings => {
                self.global_settings = Some(self.settings_window(Target::Global));
            }
            Msg::Failed(heading, message) => {
                // Each failure its own message, shown at once (the same failure twice is
                // shown twice).
                let dialog =
                    adw::MessageDialog::new(Some(&self.window), Some(&heading), Some(&message));
                dialog.add_response("close", &tr("Close"));
                dialog.set_close_response("close");
                dialog.present();
                self.last_error = Some((heading, message));
            }
        }
    }
}
