//! Create and remove dialogs. Both talk to the daemon off the main thread and report its
//! failures through [`crate::errors::describe`].

use qubes_api::Client;
use relm4::adw;
use relm4::adw::prelude::*;
use relm4::gtk;

use crate::errors::describe;
use crate::i18n::tr;

/// Qube classes the create dialog offers.
pub const CLASSES: [&str; 3] = ["AppVM", "StandaloneVM", "TemplateVM"];

/// What the create dialog asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewQube {
    /// Name.
    pub name: String,
    /// Class.
    pub class: String,
    /// Label name.
    pub label: String,
    /// Template (AppVM only; empty = default).
    pub template: String,
    /// Network qube: `None` = default, `Some("")` = none.
    pub netvm: Option<String>,
    /// Storage pool for every volume (`None` = the default pools).
    pub pool: Option<String>,
}

/// Creates the qube; then sets its netvm if one was chosen.
pub fn create_qube(client: &Client, q: &NewQube) -> Result<(), String> {
    let mut payload = format!("name={} label={}", q.name, q.label);
    let template = if q.class == "AppVM" {
        q.template.as_str()
    } else {
        ""
    };
    let method = match &q.pool {
        Some(pool) => {
            payload.push_str(&format!(" pool={pool}"));
            format!("admin.vm.CreateInPool.{}", q.class)
        }
        None => format!("admin.vm.Create.{}", q.class),
    };
    client
        .call(&method, "dom0", template, payload.as_bytes())
        .map_err(|e| describe(&e))?;
    if let Some(net) = &q.netvm {
        client
            .call("admin.vm.property.Set", &q.name, "netvm", net.as_bytes())
            .map_err(|e| describe(&e))?;
    }
    Ok(())
}

/// What still refers to a qube (so the user sees why a removal would fail).
pub fn dependents(client: &Client, vm: &str) -> Vec<String> {
    let mut out = Vec::new();
    let Ok(list) = client.vm_list() else {
        return out;
    };
    for q in list.iter().filter(|q| q.name != vm) {
        for prop in ["template", "netvm", "default_dispvm", "management_dispvm"] {
            if let Ok(v) = client.call("admin.vm.property.Get", &q.name, prop, b"")
                && v.starts_with("default=False ")
                && v.rsplit(' ').next() == Some(vm)
            {
                out.push(format!("{}: {prop}", q.name));
            }
        }
    }
    if let Ok(all) = client.call("admin.property.GetAll", "dom0", "", b"") {
        for line in all.lines() {
            let mut parts = line.splitn(2, ' ');
            let (Some(name), Some(rest)) = (parts.next(), parts.next()) else {
                continue;
            };
            if rest.starts_with("default=False type=vm ") && rest.rsplit(' ').next() == Some(vm) {
                out.push(format!("{}: {name}", tr("global")));
            }
        }
    }
    out
}

/// The remove dialog: the user types the qube's name to confirm. The dialog closes with the
/// answer; a refusal from the daemon goes to `failed` (heading, sentence), which shows it in a
/// message of its own.
pub fn remove_dialog(
    parent: &impl IsA<gtk::Window>,
    client: Client,
    vm: String,
    failed: impl Fn(String, String) + 'static,
) -> adw::MessageDialog {
    let dialog = adw::MessageDialog::new(
        Some(parent),
        Some(&tr("Remove %s?").replacen("%s", &vm, 1)),
        Some(&tr(
            "This deletes the qube and its data. Type its name to confirm.",
        )),
    );
    let entry = gtk::Entry::new();
    entry.set_tooltip_text(Some(&tr("Name of the qube to remove")));
    crate::a11y::set_name(&entry, &tr("Name of the qube to remove"));
    let status = gtk::Label::builder().wrap(true).xalign(0.0).build();
    let extra = gtk::Box::new(gtk::Orientation::Vertical, 6);
    extra.append(&entry);
    extra.append(&status);
    dialog.set_extra_child(Some(&extra));
    dialog.add_response("cancel", &tr("Cancel"));
    dialog.add_response("remove", &tr("Remove"));
    dialog.set_response_appearance("remove", adw::ResponseAppearance::Destructive);
    dialog.set_response_enabled("remove", false);
    dialog.set_close_response("cancel");
    // A qube something still refers to cannot be removed (the daemon refuses): say what, and
    // keep Remove off.
    let blocked = std::rc::Rc::new(std::cell::Cell::new(false));
    {
        let (dialog, vm, blocked) = (dialog.clone(), vm.clone(), blocked.clone());
        entry.connect_changed(move |e| {
            dialog.set_response_enabled("remove", !blocked.get() && e.text() == vm.as_str())
        });
    }
    {
        let (client, vm, status) = (client.clone(), vm.clone(), status.clone());
        let dialog = dialog.clone();
        crate::widgets::background(
            move || dependents(&client, &vm),
            move |deps: Vec<String>| {
                if !deps.is_empty() {
                    blocked.set(true);
                    dialog.set_response_enabled("remove", false);
                    status.set_text(&format!(
                        "{}\n{}",
                        tr("It cannot be removed while these use it:"),
                        deps.join("\n")
                    ));
                }
            },
        );
    }
    // A message dialog closes with its answer (and cannot be shown again after that), so a
    // failure gets a message of its own.
    let failed = std::rc::Rc::new(failed);
    dialog.connect_response(Some("remove"), move |_, _| {
        let (client, vm, failed) = (client.clone(), vm.clone(), failed.clone());
        let heading = tr("Removing %s failed").replacen("%s", &vm, 1);
        crate::widgets::background(
            move || {
                client
                    .call("admin.vm.Remove", &vm, "", b"")
                    .map(|_| ())
                    .map_err(|e| describe(&e))
            },
            move |r| {
                if let Err(e) = r {
                    failed(heading, e);
                }
            },
        );
    });
    dialog.present();
    dialog
}

/// The create dialog's widgets, for tests.
pub struct CreateDialog {
    /// The window.
    pub window: adw::Window,
    /// Name entry.
    pub name: gtk::Entry,
    /// What is wrong with the name, under it.
    pub name_problem: gtk::Label,
    /// Class choice ([`CLASSES`]).
    pub class: gtk::DropDown,
    /// Label choice.
    pub label: gtk::DropDown,
    /// Template choice (the system's default template chosen once known).
    pub template: gtk::DropDown,
    /// Network choice: default (saying which), none, then the network qubes.
    pub netvm: gtk::DropDown,
    /// Storage pool choice: default (saying which), then the pools (filled once read).
    pub pool: gtk::DropDown,
    /// Open the new qube's settings after creating it.
    pub open_settings: gtk::CheckButton,
    /// Create button.
    pub create: gtk::Button,
    /// The daemon's refusal.
    pub status: gtk::Label,
}

/// What the create dialog offers, from the window's table.
pub struct CreateChoices {
    /// Label names, in the daemon's order.
    pub labels: Vec<String>,
    /// Template qubes.
    pub templates: Vec<String>,
    /// Qubes providing network.
    pub networked: Vec<String>,
    /// Names in use.
    pub taken: Vec<String>,
}

/// The names shown for [`CLASSES`].
fn class_titles() -> [String; 3] {
    [tr("App qube"), tr("Standalone qube"), tr("Template")]
}

/// The system's defaults a new qube gets: template, network qube, storage pool.
fn read_defaults(client: &Client) -> [Option<String>; 3] {
    ["default_template", "default_netvm", "default_pool"].map(|p| {
        client
            .call("admin.property.Get", "dom0", p, b"")
            .ok()
            .and_then(|v| qubes_api::PropValue::parse(&v).ok())
            .map(|v| v.value)
    })
}

/// "default (X)", or "default" while X is not known, or "default (none)".
fn default_text(value: Option<&str>) -> String {
    match value {
        None => tr("default"),
        Some("") => crate::i18n::tr_default(&tr("none")),
        Some(v) => crate::i18n::tr_default(v),
    }
}

/// The create dialog: name, class, label, template, network, pool; the qube's settings may
/// be opened after (`created` hears the new qube's name). The name is checked as it is typed
/// (the daemon's rules, names in use), so Create only sends names the daemon takes.
pub fn create_dialog(
    parent: &impl IsA<gtk::Window>,
    client: Client,
    choices: CreateChoices,
    created: impl Fn(String) + 'static,
) -> CreateDialog {
    let CreateChoices {
        labels,
        templates,
        networked,
        taken,
    } = choices;
    let window = adw::Window::builder()
        .title(tr("Create new qube"))
        .modal(true)
        .transient_for(parent)
        .default_width(420)
        .build();
    let header = adw::HeaderBar::new();
    let create = gtk::Button::with_label(&tr("Create"));
    create.add_css_class("suggested-action");
    create.set_sensitive(false);
    header.pack_end(&create);
    let form = crate::widgets::page_box(6);
    let caption = |t: &str| gtk::Label::builder().label(t).xalign(0.0).build();
    let name = gtk::Entry::new();
    name.set_max_length(crate::limits::NAME_MAX as i32 + 1);
    name.set_activates_default(true);
    let name_problem = gtk::Label::builder()
        .wrap(true)
        .xalign(0.0)
        .visible(false)
        .build();
    name_problem.add_css_class("error");
    let titles = class_titles();
    let title_refs: Vec<&str> = titles.iter().map(String::as_str).collect();
    let class = gtk::DropDown::from_strings(&title_refs);
    let label_refs: Vec<&str> = labels.iter().map(String::as_str).collect();
    let label = gtk::DropDown::from_strings(&label_refs);
    let template_refs: Vec<&str> = templates.iter().map(String::as_str).collect();
    let template = gtk::DropDown::from_strings(&template_refs);
    let net_texts = {
        let networked = networked.clone();
        move |default: Option<&str>| {
            let mut texts = vec![default_text(default), tr("none")];
            texts.extend(networked.iter().cloned());
            texts
        }
    };
    let net_refs: Vec<String> = net_texts(None);
    let netvm =
        gtk::DropDown::from_strings(&net_refs.iter().map(String::as_str).collect::<Vec<_>>());
    let pool = gtk::DropDown::from_strings(&[tr("default").as_str()]);
    let pools: std::rc::Rc<std::cell::RefCell<Vec<String>>> = Default::default();
    {
        // Pools and defaults are read in the background; "default" works until they arrive.
        let (client, pool, pools, template, netvm) = (
            client.clone(),
            pool.clone(),
            pools.clone(),
            template.clone(),
            netvm.clone(),
        );
        let (templates, net_texts) = (templates.clone(), net_texts.clone());
        crate::widgets::background(
            move || {
                let list = client
                    .call("admin.pool.List", "dom0", "", b"")
                    .map(|l| l.lines().map(str::to_string).collect::<Vec<_>>())
                    .unwrap_or_default();
                (list, read_defaults(&client))
            },
            move |(list, [default_template, default_netvm, default_pool])| {
                let mut texts = vec![default_text(default_pool.as_deref())];
                texts.extend(list.iter().cloned());
                let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
                let chosen = pool.selected();
                pool.set_model(Some(&gtk::StringList::new(&refs)));
                pool.set_selected(chosen);
                *pools.borrow_mut() = list;
                if let Some(t) = default_template
                    && let Some(pos) = templates.iter().position(|n| *n == t)
                {
                    template.set_selected(pos as u32);
                }
                let texts = net_texts(default_netvm.as_deref());
                let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
                let chosen = netvm.selected();
                netvm.set_model(Some(&gtk::StringList::new(&refs)));
                netvm.set_selected(chosen);
            },
        );
    }
    let open_settings =
        gtk::CheckButton::with_label(&tr("Open the qube's settings after creating it"));
    let status = gtk::Label::builder().wrap(true).xalign(0.0).build();
    status.add_css_class("error");
    let fields = [
        (tr("Name"), name.clone().upcast::<gtk::Widget>()),
        (tr("Type"), class.clone().upcast()),
        (tr("Label"), label.clone().upcast()),
        (tr("Template"), template.clone().upcast()),
        (tr("Network qube"), netvm.clone().upcast()),
        (tr("Storage pool"), pool.clone().upcast()),
    ];
    for (t, w) in fields {
        w.set_tooltip_text(Some(&t));
        crate::a11y::set_name(&w, &t);
        form.append(&caption(&t));
        form.append(&w);
        if w == name.clone().upcast::<gtk::Widget>() {
            form.append(&name_problem);
        }
    }
    form.append(&open_settings);
    form.append(&status);
    {
        // Only app qubes are based on a template.
        let template = template.clone();
        class.connect_selected_notify(move |c| template.set_sensitive(c.selected() == 0));
    }
    {
        // The name is checked as it is typed; an empty field says nothing until typed in.
        let (create, problem) = (create.clone(), name_problem.clone());
        name.connect_changed(move |e| {
            let text = e.text();
            let wrong = crate::limits::name_problem(&text, taken.iter().map(String::as_str));
            create.set_sensitive(wrong.is_none());
            problem.set_visible(wrong.is_some());
            problem.set_text(&wrong.unwrap_or_default());
        });
    }
    let content = gtk::Box::new(gtk::Orientation::Vertical, 0);
    content.append(&header);
    content.append(&form);
    window.set_content(Some(&content));
    window.set_default_widget(Some(&create));
    crate::widgets::close_on_escape(&window);
    {
        let (name_e, class_d, label_d, template_d, status_l, win) = (
            name.clone(),
            class.clone(),
            label.clone(),
            template.clone(),
            status.clone(),
            window.clone(),
        );
        let (netvm_d, pool_d, open_c) = (netvm.clone(), pool.clone(), open_settings.clone());
        let created = std::rc::Rc::new(created);
        create.connect_clicked(move |button| {
            let pick = |d: &gtk::DropDown, list: &[String]| {
                list.get(d.selected() as usize).cloned().unwrap_or_default()
            };
            let q = NewQube {
                name: name_e.text().to_string(),
                class: CLASSES[class_d.selected() as usize % CLASSES.len()].to_string(),
                label: pick(&label_d, &labels),
                template: pick(&template_d, &templates),
                netvm: match netvm_d.selected() {
                    0 => None,
                    1 => Some(String::new()),
                    n => networked.get(n as usize - 2).cloned(),
                },
                pool: match pool_d.selected() {
                    0 => None,
                    n => pools.borrow().get(n as usize - 1).cloned(),
                },
            };
            let open_after = open_c.is_active();
            let created = created.clone();
            button.set_sensitive(false);
            let (client, status_l, win, button) = (
                client.clone(),
                status_l.clone(),
                win.clone(),
                button.clone(),
            );
            let name = q.name.clone();
            crate::widgets::background(
                move || create_qube(&client, &q),
                move |r| match r {
                    Ok(()) => {
                        win.close();
                        if open_after {
                            created(name);
                        }
                    }
                    Err(e) => {
                        status_l.set_text(&e);
                        button.set_sensitive(true);
                    }
                },
            );
        });
    }
    window.present();
    name.grab_focus();
    CreateDialog {
        window,
        name,
        name_problem,
        class,
        label,
        template,
        netvm,
        pool,
        open_settings,
        create,
        status,
    }
}
