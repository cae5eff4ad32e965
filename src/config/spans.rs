//! Where each key was written. figment merges values but forgets positions, so every file is
//! also parsed with `toml_edit` (which keeps byte spans) and walked into [`Record`]s: the key
//! path as the *merged* configuration numbers it (pools and peers count across the main file
//! and the conf.d files, in order), and the byte offset to point at. Environment variables
//! override the entries of the keys they set. [`SpanIndex::locate`] turns a key path into a
//! [`Location`]; the records also let the loader map a serde error's span back to a key path,
//! and blank out a bad entry so the rest of the file can still be checked.

use std::collections::{BTreeMap, HashMap};
use std::ops::Bound;
use std::ops::Range;
use std::path::{Path, PathBuf};

use toml_edit::{ImDocument, Item, Table, Value};

use super::diagnostic::Location;

/// A file's text, with what is needed to turn byte offsets into lines and columns.
#[derive(Debug, Clone)]
pub struct SourceText {
    path: PathBuf,
    text: String,
    line_starts: Vec<usize>,
}

impl SourceText {
    /// Remembers `text` as read from `path`.
    pub fn new(path: impl Into<PathBuf>, text: impl Into<String>) -> SourceText {
        let text = text.into();
        let line_starts = std::iter::once(0)
            .chain(text.match_indices('\n').map(|(i, _)| i + 1))
            .collect();
        SourceText {
            path: path.into(),
            text,
            line_starts,
        }
    }

    /// The file name as given.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The text.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// 1-based line and column (in characters) of a byte offset.
    pub fn line_col(&self, offset: usize) -> (usize, usize) {
        let offset = offset.min(self.text.len());
        let line = self.line_starts.partition_point(|&s| s <= offset).max(1);
        let start = self.line_starts[line - 1];
        let column = self
            .text
            .get(start..offset)
            .map_or(offset - start, |s| s.chars().count())
            + 1;
        (line, column)
    }

    /// The location of a byte offset (or of the whole file).
    pub fn location(&self, offset: Option<usize>) -> Location {
        let (line, column) = match offset {
            Some(o) => {
                let (l, c) = self.line_col(o);
                (Some(l), Some(c))
            }
            None => (None, None),
        };
        Location::File {
            path: self.path.clone(),
            line,
            column,
        }
    }

    /// Byte offset of the start of the line holding `offset`.
    fn line_start(&self, offset: usize) -> usize {
        let line = self.line_starts.partition_point(|&s| s <= offset).max(1);
        self.line_starts[line - 1]
    }
}

/// One key, table or array element found in a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// Key path in the merged configuration's numbering, e.g. `pool[2].addresses[0]`.
    pub path: String,
    /// Byte offset to point at: the value, or a table's header.
    pub pos: Option<usize>,
    /// Bytes the entry covers (key and value, or header and body), to map spans to paths.
    pub extent: Option<Range<usize>>,
    /// For entries that stand on their own lines (a `key = value` in a table, a table with its
    /// body): the bytes to blank to remove the entry without disturbing anything else.
    pub mask: Option<Range<usize>>,
}

/// What walking one file found.
#[derive(Debug, Clone, Default)]
pub struct Walk {
    /// Every entry, parents before children.
    pub records: Vec<Record>,
    /// Length of each array in this file, by merged path (for the next file's numbering).
    lengths: HashMap<String, usize>,
}

/// Walks a parsed file. `counts` holds how many elements each array already has from the
/// files before (figment's `admerge` appends arrays).
pub fn walk(doc: &ImDocument<&str>, source: &SourceText, counts: &HashMap<String, usize>) -> Walk {
    let mut w = Walker {
        source,
        counts,
        out: Walk::default(),
    };
    w.table(doc.as_table(), "");
    w.out
}

struct Walker<'a> {
    source: &'a SourceText,
    counts: &'a HashMap<String, usize>,
    out: Walk,
}

impl Walker<'_> {
    fn push(
        &mut self,
        path: String,
        pos: Option<usize>,
        extent: Option<Range<usize>>,
        mask: Option<Range<usize>>,
    ) {
        self.out.records.push(Record {
            path,
            pos,
            extent,
            mask,
        });
    }

    fn offset(&self, path: &str) -> usize {
        self.counts.get(path).copied().unwrap_or(0)
    }

    /// A table written with a header (or the root, or a dotted-key table): its entries stand on
    /// their own lines.
    fn table(&mut self, table: &Table, path: &str) {
        for (k, item) in table.iter() {
            let key_span = table.key(k).and_then(|key| key.span());
            let child = join(path, k);
            match item {
                Item::None => {}
                Item::Value(v) => {
                    let v_span = v.span();
                    let extent = match (&key_span, &v_span) {
                        (Some(ks), Some(vs)) => Some(ks.start..vs.end),
                        _ => v_span.clone(),
                    };
                    let mask = match (&key_span, &v_span) {
                        (Some(ks), Some(vs)) => Some(self.source.line_start(ks.start)..vs.end),
                        _ => None,
                    };
                    self.push(child.clone(), v_span.map(|s| s.start), extent, mask);
                    self.value(v, &child);
                }
                Item::Table(sub) => {
                    let pos = key_span.as_ref().map(|s| s.start);
                    if sub.is_dotted() || sub.is_implicit() {
                        self.push(child.clone(), pos, None, None);
                    } else {
                        let span = sub.span();
                        let pos = pos.or(span.as_ref().map(|s| s.start));
                        self.push(child.clone(), pos, span.clone(), span);
                    }
                    self.table(sub, &child);
                }
                Item::ArrayOfTables(array) => {
                    let offset = self.offset(&child);
                    let first = array.iter().next().and_then(|t| t.span()).map(|s| s.start);
                    self.push(child.clone(), first, None, None);
                    for (i, t) in array.iter().enumerate() {
                        let elem = format!("{child}[{}]", offset + i);
                        let span = t.span();
                        self.push(
                            elem.clone(),
                            span.as_ref().map(|s| s.start),
                            span.clone(),
                            span,
                        );
                        self.table(t, &elem);
                    }
                    self.out.lengths.insert(child, offset + array.len());
                }
            }
        }
    }

    /// An inline value: its parts are not lines of their own.
    fn value(&mut self, value: &Value, path: &str) {
        match value {
            Value::Array(array) => {
                let offset = self.offset(path);
                for (i, v) in array.iter().enumerate() {
                    let elem = format!("{path}[{}]", offset + i);
                    let span = v.span();
                    self.push(elem.clone(), span.as_ref().map(|s| s.start), span, None);
                    self.value(v, &elem);
                }
                self.out
                    .lengths
                    .insert(path.to_string(), offset + array.len());
            }
            Value::InlineTable(table) => {
                for (k, v) in table.iter() {
                    let child = join(path, k);
                    let span = v.span();
                    let key_span = table.key(k).and_then(|key| key.span());
                    let extent = match (&key_span, &span) {
                        (Some(ks), Some(vs)) => Some(ks.start..vs.end),
                        _ => span.clone(),
                    };
                    self.push(child.clone(), span.map(|s| s.start), extent, None);
                    self.value(v, &child);
                }
            }
            _ => {}
        }
    }
}

/// `parent.key`, quoting the key when it is not a bare TOML key.
pub fn join(parent: &str, key: &str) -> String {
    let bare = !key.is_empty()
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    let key = if bare {
        key.to_string()
    } else {
        format!("{key:?}")
    };
    if parent.is_empty() {
        key
    } else {
        format!("{parent}.{key}")
    }
}

/// The path one level up: `pool[1].addresses[0]` → `pool[1].addresses` → `pool[1]` → `pool`
/// → `` (the root); `None` for the root.
pub fn parent(path: &str) -> Option<&str> {
    if path.is_empty() {
        return None;
    }
    if path.ends_with(']') {
        return path.rfind('[').map(|i| &path[..i]);
    }
    if path.ends_with('"') {
        // A quoted key: find its opening quote (quotes inside are escaped).
        let bytes = path.as_bytes();
        let mut i = path.len() - 1;
        while i > 0 {
            i -= 1;
            if bytes[i] == b'"' && (i == 0 || bytes[i - 1] != b'\\') {
                return Some(path[..i].strip_suffix('.').unwrap_or(&path[..i]));
            }
        }
        return Some("");
    }
    Some(path.rfind('.').map_or("", |i| &path[..i]))
}

/// The last key of a path, without its index: `pool[1].addresses[0]` → `addresses`.
pub fn last_key(path: &str) -> &str {
    let p = path
        .strip_suffix(']')
        .and_then(|p| p.rfind('[').map(|i| &path[..i]))
        .unwrap_or(path);
    let start = parent(p).map_or(0, |parent| {
        if parent.is_empty() {
            0
        } else {
            parent.len() + 1
        }
    });
    &p[start..]
}

/// Whether `path` is `prefix` or lies inside it.
pub fn is_within(path: &str, prefix: &str) -> bool {
    prefix.is_empty()
        || path == prefix
        || (path.starts_with(prefix)
            && matches!(path.as_bytes().get(prefix.len()), Some(b'.' | b'[')))
}

/// The schema table a path lies in, without indices: `pool[1].bgp.peers` → `pool.bgp`.
pub fn table_of(path: &str) -> String {
    let mut out = String::new();
    let mut depth = 0;
    for c in parent(path).unwrap_or("").chars() {
        match c {
            '[' => depth += 1,
            ']' => depth -= 1,
            _ if depth == 0 => out.push(c),
            _ => {}
        }
    }
    out
}

impl Walk {
    /// The path of the innermost entry covering `span` (a serde error's span).
    pub fn path_at(&self, span: &Range<usize>) -> Option<&Record> {
        self.records
            .iter()
            .filter(|r| {
                r.extent
                    .as_ref()
                    .is_some_and(|e| e.start <= span.start && span.end <= e.end.max(span.start))
            })
            .min_by_key(|r| r.extent.as_ref().map_or(usize::MAX, |e| e.end - e.start))
    }

    /// The byte ranges to blank to remove `path` (or, if it is part of a larger inline value,
    /// the smallest enclosing entry that stands on its own lines), with the path removed.
    pub fn masks_for(&self, path: &str) -> Option<(String, Vec<Range<usize>>)> {
        let mut p = path;
        loop {
            let masks: Vec<Range<usize>> = self
                .records
                .iter()
                .filter(|r| is_within(&r.path, p))
                .filter_map(|r| r.mask.clone())
                .collect();
            if !masks.is_empty() && !p.is_empty() {
                return Some((p.to_string(), masks));
            }
            p = parent(p)?;
            if p.is_empty() {
                return None;
            }
        }
    }
}

/// Replaces every byte of the ranges but line breaks with spaces: the entries disappear, every
/// other byte keeps its offset (so spans and line numbers stay valid).
pub fn blank(text: &str, ranges: &[Range<usize>]) -> String {
    let mut bytes = text.as_bytes().to_vec();
    for r in ranges {
        for b in bytes.iter_mut().take(r.end.min(text.len())).skip(r.start) {
            if *b != b'\n' && *b != b'\r' {
                *b = b' ';
            }
        }
    }
    // Whole UTF-8 sequences are replaced (ranges start and end at character boundaries), so
    // this cannot fail; fall back to the original text rather than panic.
    String::from_utf8(bytes).unwrap_or_else(|_| text.to_string())
}

/// Where each key of the merged configuration was written.
#[derive(Debug, Clone, Default)]
pub struct SpanIndex {
    files: Vec<SourceText>,
    entries: BTreeMap<String, Origin>,
    counts: HashMap<String, usize>,
}

#[derive(Debug, Clone)]
enum Origin {
    File { file: usize, pos: Option<usize> },
    Env { var: String },
}

impl SpanIndex {
    /// Array lengths so far, for numbering the next file.
    pub fn counts(&self) -> &HashMap<String, usize> {
        &self.counts
    }

    /// Adds a file's entries; later entries override earlier ones, as the merge does.
    pub fn add_file(&mut self, source: SourceText, walk: Walk) {
        let file = self.files.len();
        self.files.push(source);
        for r in walk.records {
            self.entries
                .insert(r.path, Origin::File { file, pos: r.pos });
        }
        self.counts.extend(walk.lengths);
    }

    /// Records that the environment variable `var` set `path` (replacing what files said).
    pub fn add_env(&mut self, var: &str, path: &str) {
        self.entries.retain(|p, _| !is_within(p, path));
        self.counts.retain(|p, _| !is_within(p, path));
        self.entries.insert(
            path.to_string(),
            Origin::Env {
                var: var.to_string(),
            },
        );
    }

    /// Where `path` was written: the key itself, else the first of its parts that has a
    /// position, else its nearest written parent; [`Location::Unknown`] for defaults.
    pub fn locate(&self, path: &str) -> Location {
        if let Some(loc) = self.entries.get(path).and_then(|o| self.origin_location(o)) {
            return loc;
        }
        let inner = self
            .inside(path)
            .filter_map(|(_, o)| match o {
                Origin::File {
                    file,
                    pos: Some(pos),
                } => Some((*file, *pos, o)),
                _ => None,
            })
            .min_by_key(|(file, pos, _)| (*file, *pos));
        if let Some((_, _, o)) = inner {
            if let Some(loc) = self.origin_location(o) {
                return loc;
            }
        }
        let mut p = path;
        while let Some(up) = parent(p) {
            if up.is_empty() {
                break;
            }
            if let Some(loc) = self.entries.get(up).and_then(|o| self.origin_location(o)) {
                return loc;
            }
            p = up;
        }
        Location::Unknown
    }

    /// Like [`SpanIndex::locate`], but the main file (without a line) rather than nothing for a
    /// key that was not written anywhere.
    pub fn locate_or_main(&self, path: &str) -> Location {
        match self.locate(path) {
            Location::Unknown => self.main_file(),
            loc => loc,
        }
    }

    /// Whether `path` (or something inside it) was written in a file or the environment.
    pub fn is_written(&self, path: &str) -> bool {
        self.entries.contains_key(path) || self.inside(path).next().is_some()
    }

    /// The entries strictly inside `path` (a range of the sorted map, not a scan).
    fn inside<'a>(&'a self, path: &'a str) -> impl Iterator<Item = (&'a String, &'a Origin)> + 'a {
        self.entries
            .range::<str, _>((Bound::Excluded(path), Bound::Unbounded))
            .take_while(move |(p, _)| p.starts_with(path))
            .filter(move |(p, _)| is_within(p, path) && p.as_str() != path)
    }

    /// A short "where" for naming another place in a message: `file:line:col`,
    /// `environment VAR`, or `default`.
    pub fn describe(&self, path: &str) -> String {
        if !self.is_written(path) {
            return "default".to_string();
        }
        match self.locate(path) {
            Location::Unknown => "default".to_string(),
            loc => loc.to_string(),
        }
    }

    /// The main file as a whole (for findings about the whole configuration).
    pub fn main_file(&self) -> Location {
        self.files
            .first()
            .map_or(Location::Unknown, |f| f.location(None))
    }

    fn origin_location(&self, origin: &Origin) -> Option<Location> {
        match origin {
            Origin::File { file, pos } => self.files.get(*file).map(|f| f.location(*pos)),
            Origin::Env { var } => Some(Location::Env { var: var.clone() }),
        }
    }

    /// Sort rank of a location: files in load order, then the environment, then the rest.
    pub fn rank(&self, loc: &Location) -> (usize, usize, usize) {
        match loc {
            Location::File { path, line, column } => (
                self.files
                    .iter()
                    .position(|f| f.path == *path)
                    .unwrap_or(self.files.len()),
                line.unwrap_or(0),
                column.unwrap_or(0),
            ),
            Location::Env { .. } => (usize::MAX - 1, 0, 0),
            Location::Unknown => (usize::MAX, 0, 0),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAIN: &str = r#"[log]
level = "info"   # comment

[[pool]]
name = "a"
addresses = ["10.0.0.0/24",
  "10.0.1.0/24"]
bgp.peers = ["x"]
node_selector = { "kubernetes.io/hostname" = "n1" }

[[pool]]
name = "b"
[pool.bgp]
communities = ["no-export"]
"#;

    const CONFD: &str = "[[pool]]\nname = \"c\"\naddresses = [\"10.0.2.0/24\"]\n";

    fn index() -> (SpanIndex, Walk) {
        let mut index = SpanIndex::default();
        let main = SourceText::new("/etc/ferrolb/ferrolb.toml", MAIN);
        let doc = ImDocument::parse(MAIN).unwrap();
        let w = walk(&doc, &main, index.counts());
        let keep = w.clone();
        index.add_file(main, w);
        let confd = SourceText::new("/etc/ferrolb/conf.d/10-c.toml", CONFD);
        let doc = ImDocument::parse(CONFD).unwrap();
        let w = walk(&doc, &confd, index.counts());
        index.add_file(confd, w);
        (index, keep)
    }

    fn at(index: &SpanIndex, path: &str) -> String {
        index.locate(path).to_string()
    }

    #[test]
    fn lines_and_columns() {
        let s = SourceText::new("f", "ab\nc\u{e9}d\n");
        assert_eq!(s.line_col(0), (1, 1));
        assert_eq!(s.line_col(3), (2, 1));
        assert_eq!(s.line_col(6), (2, 3), "columns count characters, not bytes");
        assert_eq!(s.line_col(100), (3, 1));
    }

    #[test]
    fn locates_keys_values_and_elements() {
        let (index, _) = index();
        assert_eq!(at(&index, "log.level"), "/etc/ferrolb/ferrolb.toml:2:9");
        assert_eq!(at(&index, "log"), "/etc/ferrolb/ferrolb.toml:1:2");
        assert_eq!(at(&index, "pool[0]"), "/etc/ferrolb/ferrolb.toml:4:1");
        assert_eq!(
            at(&index, "pool[0].addresses[1]"),
            "/etc/ferrolb/ferrolb.toml:7:3"
        );
        assert_eq!(
            at(&index, "pool[0].bgp.peers[0]"),
            "/etc/ferrolb/ferrolb.toml:8:14"
        );
        assert_eq!(
            at(&index, "pool[0].node_selector.\"kubernetes.io/hostname\""),
            "/etc/ferrolb/ferrolb.toml:9:46"
        );
        assert_eq!(at(&index, "pool[1].bgp"), "/etc/ferrolb/ferrolb.toml:13:7");
        assert_eq!(
            at(&index, "pool[1].bgp.communities[0]"),
            "/etc/ferrolb/ferrolb.toml:14:16"
        );
    }

    #[test]
    fn arrays_count_across_files() {
        let (index, _) = index();
        assert_eq!(at(&index, "pool[2]"), "/etc/ferrolb/conf.d/10-c.toml:1:1");
        assert_eq!(
            at(&index, "pool[2].addresses[0]"),
            "/etc/ferrolb/conf.d/10-c.toml:3:14"
        );
        assert_eq!(index.counts().get("pool"), Some(&3));
    }

    #[test]
    fn missing_keys_fall_back_to_their_table() {
        let (index, _) = index();
        assert_eq!(at(&index, "pool[1].mode"), "/etc/ferrolb/ferrolb.toml:11:1");
        assert_eq!(at(&index, "pool[0].bgp"), "/etc/ferrolb/ferrolb.toml:8:1");
        assert_eq!(index.locate("kubernetes.lease_duration"), Location::Unknown);
        assert_eq!(index.describe("metrics.listen"), "default");
    }

    #[test]
    fn environment_overrides_files() {
        let (mut index, _) = index();
        index.add_env("FERROLB_LOG__LEVEL", "log.level");
        assert_eq!(at(&index, "log.level"), "environment FERROLB_LOG__LEVEL");
        assert!(index.is_written("log.level"));
    }

    #[test]
    fn spans_map_to_paths_and_masks() {
        let (_, w) = index();
        let key = MAIN.find("level").unwrap();
        assert_eq!(w.path_at(&(key..key + 5)).unwrap().path, "log.level");
        let elem = MAIN.find("\"10.0.1.0/24\"").unwrap();
        assert_eq!(
            w.path_at(&(elem..elem + 13)).unwrap().path,
            "pool[0].addresses[1]"
        );
        let (masked, ranges) = w.masks_for("pool[0].addresses[1]").unwrap();
        assert_eq!(masked, "pool[0].addresses");
        let text = blank(MAIN, &ranges);
        assert_eq!(text.len(), MAIN.len());
        let doc: toml::Table = toml::from_str(&text).unwrap();
        assert!(doc["pool"][0].get("addresses").is_none());
        assert_eq!(doc["pool"][0]["name"].as_str(), Some("a"));
        assert_eq!(doc["log"]["level"].as_str(), Some("info"));
        let (masked, ranges) = w.masks_for("pool[1].bgp.communities").unwrap();
        assert_eq!(masked, "pool[1].bgp.communities");
        let doc: toml::Table = toml::from_str(&blank(MAIN, &ranges)).unwrap();
        assert!(doc["pool"][1]["bgp"].get("communities").is_none());
        let (_, ranges) = w.masks_for("pool[1].bgp").unwrap();
        let doc: toml::Table = toml::from_str(&blank(MAIN, &ranges)).unwrap();
        assert!(doc["pool"][1].get("bgp").is_none());
        assert_eq!(doc["pool"][1]["name"].as_str(), Some("b"));
        let (_, ranges) = w.masks_for("pool[0].bgp.peers").unwrap();
        let doc: toml::Table = toml::from_str(&blank(MAIN, &ranges)).unwrap();
        assert!(doc["pool"][0].get("bgp").is_none());
        assert!(w.masks_for("").is_none());
    }

    #[test]
    fn path_helpers() {
        assert_eq!(parent("pool[1].addresses[0]"), Some("pool[1].addresses"));
        assert_eq!(parent("pool[1].addresses"), Some("pool[1]"));
        assert_eq!(parent("pool[1]"), Some("pool"));
        assert_eq!(parent("pool"), Some(""));
        assert_eq!(parent(""), None);
        assert_eq!(
            parent("p[0].node_selector.\"a.b/c\""),
            Some("p[0].node_selector")
        );
        assert_eq!(
            join("p[0].node_selector", "a.b/c"),
            "p[0].node_selector.\"a.b/c\""
        );
        assert_eq!(join("", "log"), "log");
        assert_eq!(last_key("pool[1].addresses[0]"), "addresses");
        assert_eq!(last_key("pools[0]"), "pools");
        assert_eq!(last_key("log"), "log");
        assert!(is_within("pool[1].name", "pool[1]"));
        assert!(is_within("pool[1]", "pool"));
        assert!(!is_within("pools", "pool"));
        assert!(!is_within("pool[10]", "pool[1]"));
        assert_eq!(table_of("pool[1].bgp.peers"), "pool.bgp");
        assert_eq!(table_of("bgp.peer[0].asn"), "bgp.peer");
        assert_eq!(table_of("log"), "");
    }
}
