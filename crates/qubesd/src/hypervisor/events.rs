//! Domain lifecycle events from libvirt. virt 0.5 has no safe wrapper for
//! `virConnectDomainEventRegisterAny`, so this module is the one place with `unsafe` FFI.
//!
//! Contract: [`register`] is called on the libvirt thread with a live connection; the sender
//! it is given is leaked on purpose (it must outlive every callback, and a connection lives
//! as long as the daemon); the callback only copies the domain name and sends it on.

use std::ffi::{CStr, c_int, c_void};
use std::sync::Once;
use std::sync::mpsc::Sender;

use virt::connect::Connect;
use virt::sys;

use super::LifecycleEvent;

/// Starts libvirt's default event loop on its own thread (once per process). Must run before
/// the connection that wants events is opened.
pub fn start_event_loop() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        if virt::event::event_register_default_impl().is_err() {
            tracing::error!("libvirt event loop could not be registered");
            return;
        }
        let spawned = std::thread::Builder::new()
            .name("libvirt-events".into())
            .spawn(|| {
                loop {
                    if virt::event::event_run_default_impl().is_err() {
                        std::thread::sleep(std::time::Duration::from_millis(100));
                    }
                }
            });
        if let Err(e) = spawned {
            tracing::error!("libvirt event thread: {e}");
        }
    });
}

/// The callback libvirt calls for `VIR_DOMAIN_EVENT_ID_LIFECYCLE`.
extern "C" fn lifecycle_cb(
    _conn: sys::virConnectPtr,
    dom: sys::virDomainPtr,
    event: c_int,
    _detail: c_int,
    opaque: *mut c_void,
) -> c_int {
    if dom.is_null() || opaque.is_null() {
        return 0;
    }
    // SAFETY: libvirt passes a valid domain for the duration of the callback; the name it
    // returns belongs to that domain and is copied before returning.
    let name = unsafe {
        let p = sys::virDomainGetName(dom);
        if p.is_null() {
            return 0;
        }
        CStr::from_ptr(p).to_string_lossy().into_owned()
    };
    // SAFETY: `opaque` is the leaked `Sender` from `register`, valid for the process lifetime.
    let tx = unsafe { &*(opaque as *const Sender<LifecycleEvent>) };
    let ev = match event as u32 {
        sys::VIR_DOMAIN_EVENT_STARTED => LifecycleEvent::Started(name),
        sys::VIR_DOMAIN_EVENT_SUSPENDED => LifecycleEvent::Suspended(name),
        sys::VIR_DOMAIN_EVENT_RESUMED => LifecycleEvent::Resumed(name),
        sys::VIR_DOMAIN_EVENT_STOPPED | sys::VIR_DOMAIN_EVENT_CRASHED => {
            LifecycleEvent::Stopped(name)
        }
        sys::VIR_DOMAIN_EVENT_PMSUSPENDED => LifecycleEvent::PmSuspended(name),
        _ => return 0,
    };
    let _ = tx.send(ev);
    0
}

/// Subscribes to lifecycle events of every domain on `conn`.
pub fn register(conn: &Connect, tx: Sender<LifecycleEvent>) -> Result<(), String> {
    let opaque = Box::into_raw(Box::new(tx)) as *mut c_void;
    // The API takes a "generic" callback type; libvirt calls it with the lifecycle signature
    // for this event id, so the pointer is cast as the C API expects (VIR_DOMAIN_EVENT_CALLBACK).
    type Generic = unsafe extern "C" fn(sys::virConnectPtr, sys::virDomainPtr, *mut c_void);
    // SAFETY: the function pointer has the signature libvirt uses for
    // VIR_DOMAIN_EVENT_ID_LIFECYCLE; casting function pointers is how the C API is meant
    // to be used. `opaque` stays valid forever (leaked), and no free callback is given.
    let cb: Generic = unsafe {
        std::mem::transmute::<
            extern "C" fn(
                sys::virConnectPtr,
                sys::virDomainPtr,
                c_int,
                c_int,
                *mut c_void,
            ) -> c_int,
            Generic,
        >(lifecycle_cb)
    };
    // SAFETY: `conn` is a live connection owned by the caller.
    let rc = unsafe {
        sys::virConnectDomainEventRegisterAny(
            conn.as_ptr(),
            std::ptr::null_mut(),
            sys::VIR_DOMAIN_EVENT_ID_LIFECYCLE.cast_signed(),
            Some(cb),
            opaque,
            None,
        )
    };
    if rc < 0 {
        // SAFETY: the registration failed, so libvirt holds no copy of `opaque`.
        drop(unsafe { Box::from_raw(opaque as *mut Sender<LifecycleEvent>) });
        return Err("cannot register for libvirt lifecycle events".into());
    }
    Ok(())
}
