//! Device identities, qrexec arguments and the `key='value'` serialization of devices and
//! assignments (admin-api.md §8.2, §8.3), with the reference's messages for bad input.

use qubes_api::QubesError;
use qubes_api::device_format::unpack;
use qubes_api::exc::py_repr;

/// Identity of a device the backend could not describe.
pub const UNKNOWN_ID: &str = "0000:0000::?******";

/// How an assignment attaches its device.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Attached by hand, never persisted.
    Manual,
    /// Attached automatically once the user confirms.
    Ask,
    /// Attached automatically when available.
    Auto,
    /// Must be present for the qube to start.
    Required,
}

impl Mode {
    /// The wire and `qubes.xml` word.
    pub fn name(self) -> &'static str {
        match self {
            Mode::Manual => "manual",
            Mode::Ask => "ask-to-attach",
            Mode::Auto => "auto-attach",
            Mode::Required => "required",
        }
    }

    /// Parses a mode word.
    pub fn parse(s: &str) -> Option<Mode> {
        [Mode::Manual, Mode::Ask, Mode::Auto, Mode::Required]
            .into_iter()
            .find(|m| m.name() == s)
    }
}

/// A device as a request names it: backend qube, port and identity (`*` = any).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VirtualDevice {
    /// Backend qube name.
    pub backend: String,
    /// Port id (`*` = any).
    pub port_id: String,
    /// Device identity (`*` = any).
    pub device_id: String,
}

impl VirtualDevice {
    /// Parses the qrexec argument form `<backend>+<port_id>[+<device_id with : as +>]`.
    /// A missing `+` is a generic failure, as the reference's unpacking error is.
    pub fn from_qarg(arg: &str) -> Result<VirtualDevice, QubesError> {
        let (backend, rest) = arg
            .split_once('+')
            .ok_or_else(|| QubesError::silent(format!("device argument without '+': {arg}")))?;
        let rest = rest.replace('+', ":");
        let (port, devid) = rest.split_once(':').unwrap_or((rest.as_str(), ""));
        let port_id = if port == "_" { "*" } else { port };
        let device_id = match devid {
            "" | "_" => "*".to_string(),
            d => d.replace("_______", "?******"),
        };
        Ok(VirtualDevice {
            backend: backend.to_string(),
            port_id: port_id.to_string(),
            device_id,
        })
    }

    /// Python `str()`: `<backend>:<port_id>:<device_id>` (event arguments, messages).
    pub fn display(&self) -> String {
        format!("{}:{}:{}", self.backend, self.port_id, self.device_id)
    }

    /// Whether this device, `*` matching anything, names the one on `port_id` with
    /// `device_id` (the reference's `DeviceAssignment.matches`, backend compared by callers).
    pub fn matches(&self, port_id: &str, device_id: &str) -> bool {
        (self.port_id == "*" || self.port_id == port_id)
            && (self.device_id == "*" || self.device_id == device_id)
    }
}

/// An assignment decoded from an `Assign` or `Attach` payload and checked against the device
/// the argument names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Requested {
    /// The device (identity from the payload when the argument left it open).
    pub device: VirtualDevice,
    /// Requested mode (default `manual`).
    pub mode: Mode,
    /// `frontend_domain` if given.
    pub frontend: Option<String>,
    /// `_options`.
    pub options: Vec<(String, String)>,
}

/// `DeviceAssignment.deserialize` (admin-api.md §8.4, Assign): every mismatch is a
/// `ProtocolError` with the reference's text. `domain_exists` resolves `frontend_domain`.
pub fn deserialize_assignment(
    untrusted: &[u8],
    expected: &VirtualDevice,
    devclass: &str,
    domain_exists: impl Fn(&str) -> bool,
) -> Result<Requested, QubesError> {
    let (mut props, options) = unpack(untrusted)?;
    let mut take = |k: &str| {
        props
            .iter()
            .position(|(have, _)| have == k)
            .map(|i| props.remove(i).1)
    };
    if let Some(b) = take("backend_domain")
        && b != expected.backend
    {
        // Sic: no space before "when", as the reference writes it.
        return Err(QubesError::protocol(format!(
            "Got device exposed by {b}when expected devices from {}.",
            expected.backend
        )));
    }
    if let Some(p) = take("port_id")
        && p != expected.port_id
    {
        return Err(QubesError::protocol(format!(
            "Got device from port: {p} when expected port: {}.",
            expected.port_id
        )));
    }
    if let Some(c) = take("devclass")
        && c != devclass
    {
        return Err(QubesError::protocol(format!(
            "Got {c} device when expected {devclass}."
        )));
    }
    let device_id = match take("device_id") {
        Some(d) if expected.device_id != "*" && d != expected.device_id => {
            return Err(QubesError::protocol(format!(
                "Unrecognized device identity '{d}' expected '{}'",
                expected.device_id
            )));
        }
        Some(d) => d,
        None => expected.device_id.clone(),
    };
    let mode = take("mode");
    let frontend = take("frontend_domain");
    if let Some((k, _)) = props.first() {
        return Err(QubesError::protocol(format!(
            "DeviceAssignment.__init__() got an unexpected keyword argument {}",
            py_repr(k)
        )));
    }
    let mode = match mode {
        None => Mode::Manual,
        Some(m) => Mode::parse(&m).ok_or_else(|| {
            QubesError::protocol(format!("{} is not a valid AssignmentMode", py_repr(&m)))
        })?,
    };
    if let Some(f) = &frontend
        && !domain_exists(f)
    {
        return Err(QubesError::protocol(py_repr(f)));
    }
    Ok(Requested {
        device: VirtualDevice {
            device_id,
            ..expected.clone()
        },
        mode,
        frontend,
        options,
    })
}

/// Python's repr of an options dict: `{'k': 'v', ...}`.
pub fn options_repr(options: &[(String, String)]) -> String {
    let items: Vec<String> = options
        .iter()
        .map(|(k, v)| format!("{}: {}", py_repr(k), py_repr(v)))
        .collect();
    format!("{{{}}}", items.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dev(b: &str, p: &str, d: &str) -> VirtualDevice {
        VirtualDevice {
            backend: b.into(),
            port_id: p.into(),
            device_id: d.into(),
        }
    }

    #[test]
    fn qarg_forms() {
        assert_eq!(
            VirtualDevice::from_qarg("dom0+00_1f.3").unwrap(),
            dev("dom0", "00_1f.3", "*")
        );
        assert_eq!(
            VirtualDevice::from_qarg("dom0+00_1f.3+0x8086+0x51c8++p040300").unwrap(),
            dev("dom0", "00_1f.3", "0x8086:0x51c8::p040300")
        );
        assert_eq!(
            VirtualDevice::from_qarg("sys-usb+_+_").unwrap(),
            dev("sys-usb", "*", "*")
        );
        assert_eq!(
            VirtualDevice::from_qarg("dom0+x+0000+0000++_______").unwrap(),
            dev("dom0", "x", UNKNOWN_ID)
        );
        assert!(matches!(
            VirtualDevice::from_qarg("dom0"),
            Err(QubesError::Silent(_))
        ));
    }

    #[test]
    fn assignment_payload_checks() {
        let exp = dev("dom0", "00_1f.3", "*");
        let ok = |p: &[u8]| deserialize_assignment(p, &exp, "pci", |n| n == "work");
        let r = ok(b"device_id='a:b::p040300' mode='required' _no-strict-reset='True'").unwrap();
        assert_eq!(r.device.device_id, "a:b::p040300");
        assert_eq!(r.mode, Mode::Required);
        assert_eq!(ok(b"").unwrap().mode, Mode::Manual);
        let msg = |p: &[u8]| ok(p).unwrap_err().to_string();
        assert_eq!(
            msg(b"port_id='00_1f.4'"),
            "ProtocolError: Got device from port: 00_1f.4 when expected port: 00_1f.3."
        );
        assert_eq!(
            msg(b"backend_domain='sys-usb'"),
            "ProtocolError: Got device exposed by sys-usbwhen expected devices from dom0."
        );
        assert_eq!(
            msg(b"devclass='usb'"),
            "ProtocolError: Got usb device when expected pci."
        );
        assert_eq!(
            msg(b"mode='bogus'"),
            "ProtocolError: 'bogus' is not a valid AssignmentMode"
        );
        assert_eq!(
            msg(b"color='red'"),
            "ProtocolError: DeviceAssignment.__init__() got an unexpected keyword argument 'color'"
        );
        assert_eq!(msg(b"frontend_domain='nope'"), "ProtocolError: 'nope'");
        let fixed = dev("dom0", "00_1f.3", "a:b::p040300");
        assert_eq!(
            deserialize_assignment(b"device_id='c:d::p040300'", &fixed, "pci", |_| true)
                .unwrap_err()
                .to_string(),
            "ProtocolError: Unrecognized device identity 'c:d::p040300' expected 'a:b::p040300'"
        );
    }

    #[test]
    fn options_as_python_dict() {
        assert_eq!(options_repr(&[]), "{}");
        assert_eq!(
            options_repr(&[("no-strict-reset".into(), "True".into())]),
            "{'no-strict-reset': 'True'}"
        );
    }
}
