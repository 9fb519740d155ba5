//! The Qube Manager: a live table of qubes over any Admin API transport, and the Qubes Domains
//! tray item. The layers of its modules are described in the `qubes-qube-manager` binary's
//! documentation (`src/main.rs`) and the README.

pub mod a11y;
pub mod app;
pub mod backup_ui;
pub mod cli;
pub mod clone;
pub mod columns;
pub mod devices_editor;
pub mod dialogs;
pub mod errors;
pub mod features_editor;
pub mod firewall_editor;
pub mod graphs;
pub mod history;
pub mod i18n;
pub mod instance;
pub mod lifecycle;
pub mod limits;
pub mod loader;
pub mod model;
pub mod policy_agent;
pub mod policy_editor;
pub mod qube_icons;
pub mod renderer;
pub mod resources;
pub mod settings;
pub mod table;
pub mod templates;
pub mod tray;
pub mod view_state;
pub mod widgets;
