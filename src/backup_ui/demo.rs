//! The demo core's internal socket, which the import program (`qubes-volume-import`) needs to
//! bring restored volume data in. The embedded core serves only admin calls over socketpairs;
//! this serves its `internal.*` calls at a path, as the real daemon does, on a thread of its
//! own (the core's runtime is private to it).

use std::path::Path;

/// Serves `core`'s internal calls at `path` until the program ends.
pub fn serve_internal_socket(core: &qubesd::Embedded, path: &Path) -> std::io::Result<()> {
    let shared = core.shared.clone();
    let path = path.to_path_buf();
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    std::thread::Builder::new()
        .name("demo-internal-socket".into())
        .spawn(move || {
            let runtime = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(r) => r,
                Err(e) => {
                    let _ = ready_tx.send(Err(e));
                    return;
                }
            };
            runtime.block_on(async move {
                match qubesd::server::bind(&path) {
                    Ok(listener) => {
                        let _ = ready_tx.send(Ok(()));
                        qubesd::server::accept_loop(
                            listener,
                            qubesd::api::Socket::Internal,
                            shared,
                        )
                        .await;
                    }
                    Err(e) => {
                        let _ = ready_tx.send(Err(e));
                    }
                }
            });
        })?;
    ready_rx
        .recv()
        .unwrap_or_else(|_| Err(std::io::Error::other("the socket thread ended")))
}
