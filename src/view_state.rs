//! What the window remembers between runs (the "Show" choice, internal qubes, hidden
//! columns, column widths, window size),
//! kept with GSettings in a key file: `~/.config/qubes-os/qubes-qube-manager.ini` by default,
//! like the reference manager's `~/.config/qubes-os/` file, so it works without dconf too.
//!
//! The schema is the installed one when present, else the one compiled at build time. Without
//! either, nothing is remembered and the defaults apply.

use std::path::{Path, PathBuf};

use relm4::gtk::gio;
use relm4::gtk::gio::prelude::*;

use crate::model::{Column, Show};

const SCHEMA_ID: &str = "org.qubes_os.QubeManager";
const SCHEMA_PATH: &str = "/org/qubes_os/QubeManager/";

/// The remembered view state (a no-op store when no schema can be found).
pub struct ViewState {
    settings: Option<gio::Settings>,
}

impl ViewState {
    /// The state kept in the user's configuration directory.
    pub fn open_default() -> ViewState {
        let file = relm4::gtk::glib::user_config_dir()
            .join("qubes-os")
            .join("qubes-qube-manager.ini");
        ViewState::open(&file)
    }

    /// The state kept in `file` (created on the first change).
    pub fn open(file: &Path) -> ViewState {
        let Some(schema) = schema() else {
            tracing::warn!("GSettings schema {SCHEMA_ID} not found: the view is not remembered");
            return ViewState { settings: None };
        };
        if let Some(dir) = file.parent() {
            let _ = std::fs::create_dir_all(dir);
        }
        let backend = gio::keyfile_settings_backend_new(
            &file.to_string_lossy(),
            SCHEMA_PATH,
            Some("qube-manager"),
        );
        let settings = gio::Settings::new_full(&schema, Some(&backend), None);
        ViewState {
            settings: Some(settings),
        }
    }

    /// The "Show" choice.
    pub fn show(&self) -> Show {
        let id = self
            .settings
            .as_ref()
            .map(|s| s.string("show").to_string())
            .unwrap_or_default();
        Show::ALL
            .into_iter()
            .find(|s| show_id(*s) == id)
            .unwrap_or(Show::All)
    }

    /// Remembers the "Show" choice.
    pub fn set_show(&self, show: Show) {
        self.write(|s| s.set_string("show", show_id(show)));
    }

    /// Whether internal qubes are listed.
    pub fn show_internal(&self) -> bool {
        self.settings
            .as_ref()
            .is_some_and(|s| s.boolean("show-internal"))
    }

    /// Remembers whether internal qubes are listed.
    pub fn set_show_internal(&self, on: bool) {
        self.write(|s| s.set_boolean("show-internal", on));
    }

    /// The window size to start with.
    pub fn window_size(&self) -> (i32, i32) {
        self.settings
            .as_ref()
            .map(|s| (s.int("window-width"), s.int("window-height")))
            .unwrap_or((1100, 640))
    }

    /// Remembers the window size (values out of the schema's range are ignored).
    pub fn set_window_size(&self, width: i32, height: i32) {
        self.write(|s| {
            s.set_int("window-width", width)?;
            s.set_int("window-height", height)
        });
    }

    /// Columns the user hid, and columns added since the list was saved that start hidden (a
    /// new column must not squeeze the ones a user chose).
    pub fn hidden_columns(&self) -> Vec<Column> {
        let Some(s) = &self.settings else {
            return Column::HIDDEN_BY_DEFAULT.to_vec();
        };
        let ids =
            |key: &str| -> Vec<String> { s.strv(key).iter().map(|id| id.to_string()).collect() };
        let known = ids("known-columns");
        let mut hidden: Vec<Column> = ids("hidden-columns")
            .iter()
            .filter_map(|id| Column::from_id(id))
            .collect();
        let added: Vec<Column> = Column::HIDDEN_BY_DEFAULT
            .into_iter()
            .filter(|c| !known.iter().any(|k| k == c.id()) && !hidden.contains(c))
            .collect();
        hidden.extend(added);
        hidden
    }

    /// Remembers which columns are hidden (the name column is always shown).
    pub fn set_hidden_columns(&self, hidden: &[Column]) {
        let ids: Vec<&str> = hidden
            .iter()
            .filter(|c| **c != Column::Name)
            .map(|c| c.id())
            .collect();
        let known: Vec<&str> = Column::ALL.iter().map(|c| c.id()).collect();
        self.write(|s| {
            s.set_strv("hidden-columns", ids.as_slice())?;
            s.set_strv("known-columns", known.as_slice())
        });
    }

    /// The column the table is sorted by, and whether descending.
    pub fn sort(&self) -> Option<(Column, bool)> {
        let text = self.settings.as_ref()?.string("sort").to_string();
        let (id, dir) = text.split_once(':')?;
        Some((Column::from_id(id)?, dir == "descending"))
    }

    /// Remembers the sort column and direction.
    pub fn set_sort(&self, col: Column, descending: bool) {
        let dir = if descending {
            "descending"
        } else {
            "ascending"
        };
        self.write(|s| s.set_string("sort", &format!("{}:{dir}", col.id())));
    }

    /// Column widths the user set (by column), in pixels.
    pub fn column_widths(&self) -> Vec<(Column, i32)> {
        let Some(s) = &self.settings else {
            return Vec::new();
        };
        let map: std::collections::HashMap<String, i32> = s.get("column-widths");
        map.into_iter()
            .filter_map(|(id, w)| Column::from_id(&id).map(|c| (c, w)))
            .filter(|(_, w)| (16..=4096).contains(w))
            .collect()
    }

    /// Remembers column widths (pixels; columns left to size themselves are not listed).
    pub fn set_column_widths(&self, widths: &[(Column, i32)]) {
        let map: std::collections::HashMap<String, i32> = widths
            .iter()
            .map(|(c, w)| (c.id().to_string(), *w))
            .collect();
        self.write(|s| s.set("column-widths", map));
    }

    fn write(
        &self,
        change: impl FnOnce(&gio::Settings) -> Result<(), relm4::gtk::glib::BoolError>,
    ) {
        if let Some(s) = &self.settings {
            if let Err(e) = change(s) {
                tracing::warn!("cannot remember the view: {e}");
            }
            gio::Settings::sync();
        }
    }
}

/// The schema's value of a "Show" choice.
fn show_id(show: Show) -> &'static str {
    match show {
        Show::All => "all",
        Show::Running => "running",
        Show::Halted => "halted",
        Show::Templates => "templates",
        Show::Network => "network",
        Show::Standalone => "standalone",
        Show::User => "user",
    }
}

/// The installed schema, else the one compiled next to the build.
fn schema() -> Option<gio::SettingsSchema> {
    let default = gio::SettingsSchemaSource::default();
    if let Some(s) = default.as_ref().and_then(|d| d.lookup(SCHEMA_ID, true)) {
        return Some(s);
    }
    let dir = std::env::var_os("QUBES_MANAGER_SCHEMADIR")
        .map(PathBuf::from)
        .or_else(|| option_env!("QUBES_MANAGER_SCHEMADIR").map(PathBuf::from))?;
    gio::SettingsSchemaSource::from_directory(&dir, default.as_ref(), false)
        .ok()?
        .lookup(SCHEMA_ID, false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_column_added_since_the_view_was_saved_starts_hidden() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("view.ini");
        // What a version without the Tags column wrote: IP shown, the rest as by default.
        std::fs::write(
            &file,
            "[qube-manager]\nhidden-columns=['internal', 'last-backup', 'default-dispvm', 'dispvm-template', 'virt-mode']\n",
        )
        .unwrap();
        let v = ViewState::open(&file);
        let hidden = v.hidden_columns();
        assert!(!hidden.contains(&Column::Ip), "the user's choice stands");
        assert!(
            hidden.contains(&Column::Tags),
            "the new column starts hidden"
        );
        // The user shows Tags: saved with the columns known now, it stays shown.
        let shown_tags: Vec<Column> = hidden.into_iter().filter(|c| *c != Column::Tags).collect();
        v.set_hidden_columns(&shown_tags);
        let again = ViewState::open(&file);
        assert!(!again.hidden_columns().contains(&Column::Tags));
        let text = std::fs::read_to_string(&file).unwrap();
        assert!(text.contains("known-columns=["), "{text}");
        assert!(text.contains("'tags'"), "{text}");
    }

    #[test]
    fn a_new_user_sees_the_default_columns() {
        let dir = tempfile::tempdir().unwrap();
        let v = ViewState::open(&dir.path().join("view.ini"));
        let mut hidden = v.hidden_columns();
        hidden.sort();
        let mut default = Column::HIDDEN_BY_DEFAULT.to_vec();
        default.sort();
        assert_eq!(hidden, default);
    }
}
