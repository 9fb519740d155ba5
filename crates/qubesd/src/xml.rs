//! A small XML tree (element name, attributes, text, children) read with quick-xml: what
//! `qubes.xml` and libvirt's node device and domain descriptions need. Bounded nesting, so a
//! hostile file cannot exhaust the stack. And the escaping every XML this daemon writes uses.

use quick_xml::Reader;
use quick_xml::events::{BytesStart, Event as XmlEvent};

/// Appends `s` as XML text content, escaped as lxml writes it (`&`, `<`, `>`, CR).
pub fn escape_text(s: &str, out: &mut String) {
    if !s.contains(['&', '<', '>', '\r']) {
        out.push_str(s);
        return;
    }
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '\r' => out.push_str("&#13;"),
            c => out.push(c),
        }
    }
}

/// Appends `s` as an XML attribute value, escaped as lxml writes it (also quotes and
/// whitespace other than space, which attribute normalisation would otherwise lose).
pub fn escape_attr(s: &str, out: &mut String) {
    if !s.contains(['&', '<', '>', '"', '\n', '\r', '\t']) {
        out.push_str(s);
        return;
    }
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\n' => out.push_str("&#10;"),
            '\r' => out.push_str("&#13;"),
            '\t' => out.push_str("&#9;"),
            c => out.push(c),
        }
    }
}

/// A parsed XML element: name, attributes, text, children.
#[derive(Debug, Default)]
pub struct Node {
    /// Element name.
    pub name: String,
    /// Attributes in document order, unescaped.
    pub attrs: Vec<(String, String)>,
    /// Text content (all text children concatenated).
    pub text: String,
    /// Child elements.
    pub children: Vec<Node>,
}

impl Node {
    /// Value of attribute `k`.
    pub fn attr(&self, k: &str) -> Option<&str> {
        self.attrs
            .iter()
            .find(|(a, _)| a == k)
            .map(|(_, v)| v.as_str())
    }
    /// First child element called `name`.
    pub fn child(&self, name: &str) -> Option<&Node> {
        self.children.iter().find(|c| c.name == name)
    }
    /// Child elements called `name`.
    pub fn children<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a Node> + 'a {
        self.children.iter().filter(move |c| c.name == name)
    }
}

/// Deepest element nesting accepted (qubes.xml needs 5).
const MAX_DEPTH: usize = 16;

fn node_from_start(e: &BytesStart) -> Result<Node, String> {
    let name = String::from_utf8(e.name().as_ref().to_vec()).map_err(|_| "bad element name")?;
    let mut attrs = Vec::new();
    for a in e.attributes() {
        let a = a.map_err(|e| format!("bad attribute: {e}"))?;
        let key = String::from_utf8(a.key.as_ref().to_vec()).map_err(|_| "bad attribute name")?;
        let value = a
            .unescape_value()
            .map_err(|e| format!("bad attribute value: {e}"))?
            .into_owned();
        attrs.push((key, value));
    }
    Ok(Node {
        name,
        attrs,
        ..Node::default()
    })
}

/// Parses a whole document into its root element.
pub fn parse_tree(text: &[u8]) -> Result<Node, String> {
    let mut reader = Reader::from_reader(text);
    reader.config_mut().trim_text(false);
    let mut stack: Vec<Node> = Vec::new();
    let mut root: Option<Node> = None;
    let mut buf = Vec::new();
    loop {
        let ev = reader
            .read_event_into(&mut buf)
            .map_err(|e| format!("XML error at byte {}: {e}", reader.buffer_position()))?;
        match ev {
            XmlEvent::Start(e) => {
                if stack.len() >= MAX_DEPTH {
                    return Err("elements nested too deeply".into());
                }
                stack.push(node_from_start(&e)?);
            }
            XmlEvent::Empty(e) => {
                let n = node_from_start(&e)?;
                match stack.last_mut() {
                    Some(p) => p.children.push(n),
                    None if root.is_none() => root = Some(n),
                    None => return Err("more than one root element".into()),
                }
            }
            XmlEvent::End(_) => {
                let n = stack.pop().ok_or("unbalanced end tag")?;
                match stack.last_mut() {
                    Some(p) => p.children.push(n),
                    None if root.is_none() => root = Some(n),
                    None => return Err("more than one root element".into()),
                }
            }
            XmlEvent::Text(t) => {
                if let Some(n) = stack.last_mut() {
                    let s = t.unescape().map_err(|e| format!("bad text: {e}"))?;
                    n.text.push_str(&s);
                }
            }
            XmlEvent::CData(t) => {
                if let Some(n) = stack.last_mut() {
                    n.text.push_str(&String::from_utf8_lossy(&t));
                }
            }
            XmlEvent::Eof => break,
            _ => {}
        }
        buf.clear();
    }
    if !stack.is_empty() {
        return Err("unexpected end of file".into());
    }
    root.ok_or_else(|| "empty file".into())
}
