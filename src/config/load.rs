//! Loading: find and read the files, check each one on its own (syntax, unknown keys, types —
//! with positions), merge them with figment (defaults < main file < conf.d in name order <
//! `FERROLB_*` environment), validate the result, and check the secret files on disk.
//!
//! Each file is deserialized on its own with the `toml` crate, whose errors carry byte spans.
//! serde stops at the first error, so after each one the offending entry is blanked out of the
//! text (replaced by spaces, which keeps every other byte where it was) and the file is read
//! again, until it deserializes: every unknown key and type error of every file is reported in
//! one run, and what remains is still merged and validated so semantic errors come too. Keys
//! whose entries were blanked are remembered, so validation does not report them again as
//! missing.

use std::collections::HashMap;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use figment::providers::{Format, Toml};
use figment::value::{Dict, Map, Value};
use figment::{Figment, Metadata, Profile, Provider};
use toml_edit::ImDocument;

use super::diagnostic::{Diagnostic, Location};
use super::model::Config;
use super::schema::{sections, FileConfig};
use super::spans::{self, blank, is_within, last_key, table_of, SourceText, SpanIndex};
use super::validate::validate;
use super::values::closest;
use super::{ConfigErrors, LoadOptions, Loaded, DEFAULT_PATH};

/// The variable that names the main file when `--config` is not given.
pub const CONFIG_VAR: &str = "FERROLB_CONFIG";

/// Prefix of the variables that override keys.
pub const ENV_PREFIX: &str = "FERROLB_";

/// Sections the environment may set keys in (pools and peers are arrays: conf.d adds those).
const ENV_SECTIONS: [&str; 6] = ["node", "kubernetes", "cluster", "l2", "metrics", "log"];

/// How many bad entries one file may have before the loader stops looking for more.
const MAX_ERRORS_PER_FILE: usize = 100;

/// See [`super::load`].
pub fn load(opts: &LoadOptions) -> Result<Loaded, ConfigErrors> {
    let (main, named_by) = match (&opts.path, env_get(&opts.env, CONFIG_VAR)) {
        (Some(p), _) => (p.clone(), "--config"),
        (None, Some(p)) if !p.is_empty() => (PathBuf::from(p), CONFIG_VAR),
        _ => (PathBuf::from(DEFAULT_PATH), "the default"),
    };
    let text = fs::read_to_string(&main).map_err(|e| {
        let why = match e.kind() {
            io::ErrorKind::NotFound => format!(
                "the configuration file (named by {named_by}) does not exist; pass --config PATH or set {CONFIG_VAR}"
            ),
            _ => format!("cannot read the configuration file (named by {named_by}): {e}"),
        };
        ConfigErrors(vec![Diagnostic::error(file_location(&main), "", why)])
    })?;
    let mut inputs = vec![SourceText::new(&main, text)];
    let mut early = Vec::new();
    let base_dir = main.parent().map(Path::to_path_buf);
    let conf_d = base_dir.clone().unwrap_or_default().join("conf.d");
    let (more, errors) = read_conf_d(&conf_d);
    inputs.extend(more);
    early.extend(errors);
    let (env, env_diags) = env_vars(&opts.env);
    early.extend(env_diags);
    pipeline(inputs, env, early, base_dir.as_deref())
}

/// See [`super::load_str`].
pub fn load_str(name: &str, text: &str) -> Result<Loaded, ConfigErrors> {
    let base = Path::new(name)
        .parent()
        .filter(|p| !p.as_os_str().is_empty());
    pipeline(
        vec![SourceText::new(name, text)],
        Vec::new(),
        Vec::new(),
        base,
    )
}

fn env_get<'a>(env: &'a [(String, String)], name: &str) -> Option<&'a str> {
    env.iter()
        .rev()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

fn file_location(path: &Path) -> Location {
    Location::File {
        path: path.to_path_buf(),
        line: None,
        column: None,
    }
}

/// `conf.d/*.toml` in name order (no hidden files); a missing directory is fine.
fn read_conf_d(dir: &Path) -> (Vec<SourceText>, Vec<Diagnostic>) {
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return (Vec::new(), Vec::new()),
        Err(e) => {
            let d = Diagnostic::error(
                file_location(dir),
                "",
                format!("cannot list the conf.d directory: {e}"),
            );
            return (Vec::new(), vec![d]);
        }
    };
    let mut paths: Vec<PathBuf> = Vec::new();
    let mut diags = Vec::new();
    for entry in entries {
        match entry {
            Ok(entry) => {
                let path = entry.path();
                let name = entry.file_name();
                let name = name.to_string_lossy();
                if name.ends_with(".toml") && !name.starts_with('.') && path.is_file() {
                    paths.push(path);
                }
            }
            Err(e) => diags.push(Diagnostic::error(
                file_location(dir),
                "",
                format!("cannot list the conf.d directory: {e}"),
            )),
        }
    }
    paths.sort_by(|a, b| a.file_name().cmp(&b.file_name()));
    let mut out = Vec::new();
    for path in paths {
        match fs::read_to_string(&path) {
            Ok(text) => out.push(SourceText::new(path, text)),
            Err(e) => diags.push(Diagnostic::error(
                file_location(&path),
                "",
                format!("cannot read this conf.d file: {e}"),
            )),
        }
    }
    (out, diags)
}

/// One `FERROLB_SECTION__KEY` variable that names a configuration key.
#[derive(Debug, Clone)]
struct EnvVar {
    name: String,
    raw: String,
    path: String,
    segments: Vec<String>,
    value: Value,
}

/// The `FERROLB_*` variables that name configuration keys; the others are left alone
/// (`FERROLB_CONFIG` names the file), except likely mistakes, which get a warning or an error.
fn env_vars(env: &[(String, String)]) -> (Vec<EnvVar>, Vec<Diagnostic>) {
    let mut vars = Vec::new();
    let mut diags = Vec::new();
    for (name, value) in env {
        let Some(rest) = name.strip_prefix(ENV_PREFIX) else {
            continue;
        };
        if name == CONFIG_VAR {
            continue;
        }
        let segments: Vec<String> = rest.split("__").map(str::to_ascii_lowercase).collect();
        let first = segments[0].as_str();
        let path = segments
            .iter()
            .fold(String::new(), |p, s| spans::join(&p, s));
        let loc = Location::Env { var: name.clone() };
        if ENV_SECTIONS.contains(&first) {
            vars.push(EnvVar {
                name: name.clone(),
                raw: value.clone(),
                path,
                segments,
                // figment's own parsing of variable values: `true`, `7`, `[a, b]`, `"text"`.
                value: parse_env_value(value),
            });
        } else if first == "pool" || first == "bgp" {
            diags.push(Diagnostic::error(
                loc,
                path,
                "pools and BGP peers cannot be set from the environment; add them in a conf.d/*.toml file",
            ));
        } else if let Some(section) = ENV_SECTIONS
            .iter()
            .chain(&["pool", "bgp"])
            .find(|s| first.starts_with(&format!("{s}_")))
        {
            let key = rest[section.len() + 1..].to_string();
            diags.push(Diagnostic::warning(
                loc,
                "",
                format!(
                    "ignored: not a configuration variable; nested keys are separated by two underscores, like {ENV_PREFIX}{}__{key}",
                    section.to_ascii_uppercase()
                ),
            ));
        }
    }
    (vars, diags)
}

/// A variable's value as figment reads one: `true`, `7`, `[a, b]`, `"quoted text"`, else text.
fn parse_env_value(text: &str) -> Value {
    let Ok(value) = text.parse::<Value>();
    value
}

/// The environment as a figment provider (figment's own `Env` reads the process environment;
/// ours reads the list it is given).
struct EnvProvider<'a>(&'a [EnvVar]);

impl Provider for EnvProvider<'_> {
    fn metadata(&self) -> Metadata {
        Metadata::named("FERROLB_* environment variables")
    }

    fn data(&self) -> Result<Map<Profile, Dict>, figment::Error> {
        let mut dict = Dict::new();
        for var in self.0 {
            insert(&mut dict, &var.segments, var.value.clone());
        }
        Ok(Profile::Default.collect(dict))
    }
}

fn insert(dict: &mut Dict, segments: &[String], value: Value) {
    match segments {
        [] => {}
        [last] => {
            dict.insert(last.clone(), value);
        }
        [first, rest @ ..] => {
            let entry = dict
                .entry(first.clone())
                .or_insert_with(|| Value::from(Dict::new()));
            if !matches!(entry, Value::Dict(..)) {
                *entry = Value::from(Dict::new());
            }
            if let Value::Dict(_, inner) = entry {
                insert(inner, rest, value);
            }
        }
    }
}

/// What checking one file on its own gave.
struct Checked {
    /// The text with bad entries blanked, if the rest could be read.
    usable: Option<String>,
    diags: Vec<Diagnostic>,
    /// Key paths whose entries were blanked.
    blanked: Vec<String>,
    /// Keys that unknown keys were probably meant to be (`modee` → `mode`).
    meant: Vec<String>,
}

fn check_file(source: &SourceText, counts: &HashMap<String, usize>) -> Checked {
    let mut out = Checked {
        usable: None,
        diags: Vec::new(),
        blanked: Vec::new(),
        meant: Vec::new(),
    };
    let doc = match ImDocument::parse(source.text()) {
        Ok(doc) => doc,
        Err(e) => {
            let offset = e.span().map(|s| s.start);
            let (key, note) = match offset {
                Some(o) => guess_key(source.text(), o, counts),
                None => (String::new(), None),
            };
            let mut message = format!(
                "TOML syntax error: {}",
                e.message().trim().replace('\n', "; ")
            );
            if let Some(note) = note {
                message.push_str(&format!(" ({note})"));
            } else if message.contains("invalid string; expected `\"`") {
                message.push_str(" (text values need quotes, like format = \"json\")");
            }
            out.diags
                .push(Diagnostic::error(source.location(offset), key, message));
            return out;
        }
    };
    let walk = spans::walk(&doc, source, counts);
    let mut text = source.text().to_string();
    for _ in 0..MAX_ERRORS_PER_FILE {
        let error = match toml::from_str::<FileConfig>(&text) {
            Ok(_) => {
                out.usable = Some(text);
                return out;
            }
            Err(e) => e,
        };
        let span = error.span();
        let record = span.as_ref().and_then(|s| walk.path_at(s));
        let (key, culprit, message) = explain(error.message(), record.map(|r| r.path.as_str()));
        if error.message().starts_with("unknown field") {
            out.meant.extend(meant(&key));
        }
        out.diags.push(Diagnostic::error(
            source.location(span.map(|s| s.start)),
            key,
            message,
        ));
        let Some((blanked, ranges)) = walk.masks_for(&culprit) else {
            return out;
        };
        let next = blank(&text, &ranges);
        if next == text {
            return out;
        }
        out.blanked.push(blanked);
        text = next;
    }
    out
}

/// From a serde error message and the path of the entry it points at: the key path to show,
/// the path to blank, and a message that says what would be accepted.
fn explain(message: &str, at: Option<&str>) -> (String, String, String) {
    let at = at.unwrap_or("");
    if let Some((field, expected)) = parse_unknown(message, "unknown field `") {
        // The span is the unknown key: `at` is its entry (for `[[x]]`, an element of `x`).
        let path = match at
            .strip_suffix(']')
            .and_then(|p| p.rfind('[').map(|i| &at[..i]))
        {
            Some(array) if last_key(array) == field => array.to_string(),
            _ if last_key(at) == field => at.to_string(),
            _ => spans::join(at, &field),
        };
        let message = unknown_key(&path, &field, &expected);
        return (path.clone(), path, message);
    }
    if let Some((variant, expected)) = parse_unknown(message, "unknown variant `") {
        let refs: Vec<&str> = expected.iter().map(String::as_str).collect();
        let mut m = format!("unknown value {variant:?}: expected {}", quote_list(&refs));
        if let Some(c) = closest(&variant, &refs) {
            m.push_str(&format!("; did you mean {c:?}?"));
        }
        return (at.to_string(), at.to_string(), m);
    }
    let mut m = plain_words(message);
    if message == "wanted string or table" {
        // What `toml` says when an enum gets a number or a boolean.
        m = match last_key(at) {
            "mode" => "invalid type: expected \"l2\" or \"bgp\"".to_string(),
            "failback" => "invalid type: expected \"sticky\" or \"immediate\"".to_string(),
            "format" => "invalid type: expected \"text\" or \"json\"".to_string(),
            _ => "invalid type: expected a string".to_string(),
        };
    }
    (at.to_string(), at.to_string(), m)
}

/// `unknown field `x`, expected one of `a`, `b`` → (`x`, [`a`, `b`]).
fn parse_unknown(message: &str, lead: &str) -> Option<(String, Vec<String>)> {
    let rest = message.strip_prefix(lead)?;
    let (name, rest) = rest.split_once('`')?;
    let expected = rest
        .split('`')
        .skip(1)
        .step_by(2)
        .map(str::to_string)
        .collect();
    Some((name.to_string(), expected))
}

fn quote_list(items: &[&str]) -> String {
    let quoted: Vec<String> = items.iter().map(|s| format!("{s:?}")).collect();
    match quoted.as_slice() {
        [] => "nothing".to_string(),
        [one] => one.clone(),
        [init @ .., last] => format!("{} or {last}", init.join(", ")),
    }
}

/// How the table holding `path` is written in a file.
fn table_header(table: &str) -> String {
    match table {
        "" => "the top level".to_string(),
        "pool" => "[[pool]]".to_string(),
        "bgp.peer" => "[[bgp.peer]]".to_string(),
        t => format!("[{t}]"),
    }
}

/// "unknown key `levle` in [log]; did you mean `level`? (accepted: level, format)", or where
/// the key belongs when it is a key of another table.
fn unknown_key(path: &str, field: &str, expected: &[String]) -> String {
    let header = table_header(&table_of(path));
    let all = sections();
    let here: Vec<&str> = all
        .iter()
        .find(|(h, _)| *h == header)
        .map(|(_, f)| f.to_vec())
        .unwrap_or_else(|| expected.iter().map(String::as_str).collect());
    let mut m = format!("unknown key `{field}` in {header}");
    let elsewhere: Vec<&str> = all
        .iter()
        .filter(|(h, fields)| *h != header && fields.contains(&field))
        .map(|(h, _)| *h)
        .collect();
    if let Some(c) = closest(field, &here) {
        m.push_str(&format!("; did you mean `{c}`?"));
    } else if !elsewhere.is_empty() {
        m.push_str(&format!(
            "; `{field}` is a key of {}: a key belongs to the table whose header is above it, so move it under that header",
            elsewhere.join(" or ")
        ));
    }
    if here.is_empty() {
        m.push_str(" (this table takes no keys)");
    } else {
        m.push_str(&format!(" (accepted here: {})", here.join(", ")));
    }
    m
}

/// The key an unknown key was probably meant to be, if one of its table is close.
fn meant(path: &str) -> Option<String> {
    let header = table_header(&table_of(path));
    let all = sections();
    let fields = all.iter().find(|(h, _)| *h == header)?.1;
    let c = closest(last_key(path), fields)?;
    Some(spans::join(spans::parent(path)?, c))
}

/// serde's type words as TOML users know them.
fn plain_words(message: &str) -> String {
    let mut m = message
        .replace("a sequence", "an array")
        .replace("a map", "a table")
        .replace("expected i64", "expected an integer")
        .replace("expected enum Mode", "expected \"l2\" or \"bgp\"")
        .replace(
            "expected enum Failback",
            "expected \"sticky\" or \"immediate\"",
        )
        .replace("expected enum LogFormat", "expected \"text\" or \"json\"");
    while let Some(i) = m.find("expected struct ") {
        let end = m[i + 16..]
            .find(|c: char| !c.is_alphanumeric())
            .map_or(m.len(), |e| i + 16 + e);
        m.replace_range(i..end, "expected a table");
    }
    m
}

/// For a syntax error: the key path the broken line most likely belongs to, from the table
/// headers above it and the last `key =` in that table (a value may span several lines), and a
/// note when that key's value was left open (the parser notices only later).
fn guess_key(
    text: &str,
    offset: usize,
    counts: &HashMap<String, usize>,
) -> (String, Option<String>) {
    let upto = text.get(..offset).unwrap_or(text);
    let line_start = upto.rfind('\n').map_or(0, |i| i + 1);
    let line_end = text[upto.len()..]
        .find('\n')
        .map_or(text.len(), |i| upto.len() + i);
    let mut table = String::new();
    // The last `key =` of the current table: its key, line number and unclosed depth.
    let mut key: Option<(String, usize, i32)> = None;
    let mut seen: HashMap<String, usize> = HashMap::new();
    let dotted = |name: &str| name.split('.').map(str::trim).collect::<Vec<_>>().join(".");
    let header_name = |rest: &str| dotted(rest.split(']').next().unwrap_or_default());
    for (n, line) in text[..line_start].lines().enumerate() {
        let t = line.trim();
        if let Some((_, _, depth)) = key.as_mut().filter(|(_, _, depth)| *depth > 0) {
            *depth += nesting(t);
        } else if let Some(rest) = t.strip_prefix("[[") {
            let name = header_name(rest);
            let i = seen.entry(name.clone()).or_insert(0);
            table = format!("{name}[{}]", counts.get(&name).copied().unwrap_or(0) + *i);
            *i += 1;
            key = None;
        } else if let Some(rest) = t.strip_prefix('[') {
            let name = header_name(rest);
            // `[pool.bgp]` after `[[pool]]` belongs to the latest pool.
            let array = table.split('.').next().unwrap_or_default();
            table = match name.split_once('.') {
                Some((head, tail)) if array.starts_with(&format!("{head}[")) => {
                    format!("{array}.{tail}")
                }
                _ => name,
            };
            key = None;
        } else if let Some((k, v)) = t.split_once('=') {
            let k = k.trim();
            if !k.is_empty()
                && k.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"_-.".contains(&b))
            {
                key = Some((dotted(k), n + 1, nesting(v)));
            }
        }
    }
    let join = |k: &str| {
        if table.is_empty() {
            k.to_string()
        } else {
            format!("{table}.{k}")
        }
    };
    let current = text[line_start..line_end].trim();
    match key {
        Some((k, line, depth)) if depth > 0 => (
            join(&k),
            Some(format!("the value of `{k}` (line {line}) is not closed")),
        ),
        _ if current.starts_with("[[") => {
            let name = header_name(&current[2..]);
            let i = seen.get(&name).copied().unwrap_or(0);
            let first = counts.get(&name).copied().unwrap_or(0);
            (format!("{name}[{}]", first + i), None)
        }
        _ if current.starts_with('[') => (header_name(&current[1..]), None),
        _ => match current.split_once('=') {
            Some((k, _)) if !k.trim().is_empty() && !k.contains(['"', '\'']) => {
                (join(&dotted(k)), None)
            }
            _ => (key.map_or(table.clone(), |(k, _, _)| join(&k)), None),
        },
    }
}

/// How many arrays and inline tables a piece of a line opens (minus those it closes), outside
/// strings and comments.
fn nesting(s: &str) -> i32 {
    let mut depth = 0;
    let mut quote: Option<char> = None;
    let mut escaped = false;
    for c in s.chars() {
        match quote {
            Some(q) => {
                if escaped {
                    escaped = false;
                } else if c == '\\' && q == '"' {
                    escaped = true;
                } else if c == q {
                    quote = None;
                }
            }
            None => match c {
                '"' | '\'' => quote = Some(c),
                '[' | '{' => depth += 1,
                ']' | '}' => depth -= 1,
                '#' => break,
                _ => {}
            },
        }
    }
    depth
}

/// The whole pipeline on texts already read.
fn pipeline(
    sources: Vec<SourceText>,
    env: Vec<EnvVar>,
    mut diags: Vec<Diagnostic>,
    base_dir: Option<&Path>,
) -> Result<Loaded, ConfigErrors> {
    let mut index = SpanIndex::default();
    let mut usable = Vec::new();
    let mut blanked = Vec::new();
    let mut meant_keys = Vec::new();
    let mut complete = true;
    let paths: Vec<PathBuf> = sources.iter().map(|s| s.path().to_path_buf()).collect();
    for source in sources {
        let checked = check_file(&source, index.counts());
        diags.extend(checked.diags);
        blanked.extend(checked.blanked);
        meant_keys.extend(checked.meant);
        let Some(text) = checked.usable else {
            complete = false;
            index.add_file(source, spans::Walk::default());
            continue;
        };
        // Number the entries of what will really be merged.
        match ImDocument::parse(text.as_str()) {
            Ok(doc) => {
                let walk = spans::walk(&doc, &source, index.counts());
                index.add_file(source, walk);
                usable.push(text);
            }
            Err(_) => {
                complete = false;
                index.add_file(source, spans::Walk::default());
            }
        }
    }

    // Each variable on its own, so every bad one is reported.
    let mut good_env = Vec::new();
    for var in env {
        let one = std::slice::from_ref(&var);
        match Figment::from(EnvProvider(one)).extract::<FileConfig>() {
            Ok(_) => good_env.push(var),
            Err(e) => {
                let message = match &e.kind {
                    figment::error::Kind::UnknownField(field, expected) => {
                        meant_keys.extend(meant(&var.path));
                        let expected: Vec<String> =
                            expected.iter().map(|s| s.to_string()).collect();
                        unknown_key(&var.path, field, &expected)
                    }
                    kind @ figment::error::Kind::InvalidType(actual, expected)
                        if expected.contains("string")
                            && !matches!(actual, figment::error::Actual::Str(_)) =>
                    {
                        // figment reads `123` and `true` as a number and a boolean.
                        format!(
                            "{}; to pass it as text, quote it: {}='\"{}\"'",
                            plain_words(&kind.to_string()),
                            var.name,
                            var.raw
                        )
                    }
                    kind => plain_words(&kind.to_string()),
                };
                diags.push(Diagnostic::error(
                    Location::Env {
                        var: var.name.clone(),
                    },
                    var.path.clone(),
                    message,
                ));
                blanked.push(var.path.clone());
            }
        }
    }
    for var in &good_env {
        index.add_env(&var.name, &var.path);
    }

    let mut warnings: Vec<Diagnostic> = Vec::new();
    let mut config = None;
    if complete {
        let mut figment = Figment::new();
        for text in &usable {
            figment = figment.admerge(Toml::string(text));
        }
        figment = figment.merge(EnvProvider(&good_env));
        match figment.extract::<FileConfig>() {
            Ok(raw) => {
                let validated = validate(&raw, &index, base_dir);
                for d in validated.diagnostics {
                    // A key already reported (and blanked) is not reported again as missing,
                    // nor one an unknown key was probably meant to be.
                    let reported = blanked.iter().any(|b| is_within(&d.key, b));
                    let misspelt = meant_keys.contains(&d.key) && !index.is_written(&d.key);
                    if d.is_error() && (reported || misspelt) {
                        continue;
                    }
                    diags.push(d);
                }
                config = validated.config;
            }
            Err(e) => {
                let key = e.path.join(".");
                diags.push(Diagnostic::error(
                    index.locate_or_main(&key),
                    key,
                    plain_words(&e.kind.to_string()),
                ));
            }
        }
    }

    let (errors, mut rest): (Vec<Diagnostic>, Vec<Diagnostic>) =
        diags.into_iter().partition(Diagnostic::is_error);
    match config {
        Some(config) if errors.is_empty() => {
            rest.extend(file_checks(&config, &index));
            warnings.extend(rest);
            warnings.sort_by_key(|d| index.rank(&d.location));
            Ok(Loaded {
                config,
                warnings,
                sources: paths,
            })
        }
        _ => {
            let mut errors = errors;
            if errors.is_empty() {
                // Unreachable in practice: validation returns no configuration only with an
                // error. Never accept a configuration that was not built.
                errors.push(Diagnostic::error(
                    index.main_file(),
                    "",
                    "the configuration could not be built",
                ));
            }
            errors.sort_by_key(|d| index.rank(&d.location));
            Err(ConfigErrors(errors))
        }
    }
}

/// How closely a file the daemon reads must be kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Sensitivity {
    /// A secret (gossip key, BGP password): must exist and be accessible to its owner only, or
    /// `ferrolb run` refuses to start.
    Secret,
    /// Credentials (kubeconfig, token): should exist and not be readable by others.
    Credential,
    /// Public data (a CA bundle): should exist.
    Public,
}

/// The file checks validation cannot make (it reads no files): secrets that do not exist yet or
/// that others can read (`ferrolb run` refuses to start on those), missing Kubernetes files.
fn file_checks(config: &Config, index: &SpanIndex) -> Vec<Diagnostic> {
    use Sensitivity::*;
    let mut out = Vec::new();
    let mut check = |key: &str, path: &Path, what: &str, kind: Sensitivity| {
        if let Some((message, blocks)) = inspect(path, what, kind) {
            let mut d = Diagnostic::warning(index.locate_or_main(key), key, message);
            if blocks {
                d = d.blocking();
            }
            out.push(d);
        }
    };
    let c = &config.cluster;
    if let (true, false, Some(path)) = (c.enabled, c.insecure, &c.secret_file) {
        check("cluster.secret_file", path, "the gossip key", Secret);
    }
    for (i, peer) in config.peers.iter().enumerate() {
        if let Some(path) = &peer.password_file {
            let key = format!("bgp.peer[{i}].password_file");
            check(&key, path, "the BGP password file", Secret);
        }
    }
    let k = &config.kubernetes;
    if let Some(path) = &k.kubeconfig {
        check("kubernetes.kubeconfig", path, "the kubeconfig", Credential);
    }
    if let Some(path) = &k.token_file {
        check("kubernetes.token_file", path, "the token file", Credential);
    }
    if let Some(path) = &k.ca_file {
        check("kubernetes.ca_file", path, "the CA file", Public);
    }
    out
}

/// What is wrong with a file the daemon will need, if anything, and whether the daemon refuses
/// to start because of it (only secrets, and only when the check is sure).
fn inspect(path: &Path, what: &str, kind: Sensitivity) -> Option<(String, bool)> {
    use std::os::unix::fs::PermissionsExt;
    let secret = kind == Sensitivity::Secret;
    let shown = path.display();
    match fs::metadata(path) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => Some((
            format!("{what} {shown} does not exist (yet); create it before starting ferrolb"),
            secret,
        )),
        Err(e) if e.kind() == io::ErrorKind::PermissionDenied => Some((
            format!("{what} {shown} cannot be checked as this user ({e}); run check-config as root to check it"),
            false,
        )),
        Err(e) => Some((format!("{what} {shown} cannot be read: {e}"), secret)),
        Ok(m) if !m.is_file() => Some((format!("{what} {shown} is not a regular file"), secret)),
        Ok(m) => {
            let mode = m.permissions().mode() & 0o777;
            let (exposed, who, fix) = match kind {
                Sensitivity::Secret => (mode & 0o077, "group or others", "600"),
                Sensitivity::Credential => (mode & 0o007, "others", "o-rwx"),
                Sensitivity::Public => (0, "", ""),
            };
            (exposed != 0).then(|| {
                (
                    format!("{what} {shown} can be read or written by {who} (mode {mode:04o}); run: chmod {fix} {shown}"),
                    secret,
                )
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_keys_suggest_and_relocate() {
        let m = unknown_key("log.levle", "levle", &[]);
        assert!(m.contains("in [log]; did you mean `level`?"), "{m}");
        assert!(m.contains("accepted here: level, format"), "{m}");
        let m = unknown_key("pool[0].hold_time", "hold_time", &[]);
        assert!(m.contains("is a key of [[bgp.peer]]"), "{m}");
        let m = unknown_key("pool[0].bgp.interfaces", "interfaces", &[]);
        assert!(
            m.contains("in [pool.bgp]") && m.contains("key of [[pool]]"),
            "{m}"
        );
        let m = unknown_key("level", "level", &[]);
        assert!(m.contains("the top level") && m.contains("[log]"), "{m}");
    }

    #[test]
    fn explains_serde_errors() {
        let (key, culprit, m) = explain(
            "unknown field `pools`, expected `log` or `pool`",
            Some("pools[0]"),
        );
        assert_eq!((key.as_str(), culprit.as_str()), ("pools", "pools"));
        assert!(m.contains("did you mean `pool`?"), "{m}");
        let (key, _, m) = explain(
            "unknown variant `L3`, expected `l2` or `bgp`",
            Some("pool[0].mode"),
        );
        assert_eq!(key, "pool[0].mode");
        assert!(
            m.contains("expected \"l2\" or \"bgp\"; did you mean \"l2\"?"),
            "{m}"
        );
        let (_, _, m) = explain(
            "invalid type: integer `3`, expected a sequence",
            Some("pool"),
        );
        assert_eq!(m, "invalid type: integer `3`, expected an array");
        assert_eq!(
            plain_words("invalid type: string \"x\", expected struct PoolSection"),
            "invalid type: string \"x\", expected a table"
        );
    }

    #[test]
    fn guesses_the_key_of_a_broken_line() {
        let counts = HashMap::from([("pool".to_string(), 2)]);
        let key = |text: &str, at: usize| guess_key(text, at, &counts).0;
        let text = "[[pool]]\nname = \"a\"\n[pool.bgp]\npeers = [\"x\"\n";
        let at = text.find("peers").unwrap();
        assert_eq!(key(text, at + 8), "pool[2].bgp.peers");
        let text = "[log]\nlevel = info\n";
        assert_eq!(key(text, text.find("info").unwrap()), "log.level");
        assert_eq!(key("[log\n", 4), "log");
        assert_eq!(key("[[bgp.peer]\n", 10), "bgp.peer[0]");
        let text = "[[pool]]\naddresses = [\"a\",\n  \"b]\" # ]\n\n[log]\n";
        let (k, note) = guess_key(text, text.find("[log]").unwrap(), &counts);
        assert_eq!(k, "pool[2].addresses");
        assert_eq!(
            note.as_deref(),
            Some("the value of `addresses` (line 2) is not closed")
        );
        assert_eq!(nesting("[1, [2], \"[\", '{'] # ["), 0);
        assert_eq!(nesting("{ a = [1,"), 2);
    }

    #[test]
    fn environment_variables_are_sorted_out() {
        let env: Vec<(String, String)> = [
            ("FERROLB_CONFIG", "/x.toml"),
            ("FERROLB_LOG__LEVEL", "debug"),
            ("FERROLB_LOG_LEVEL", "debug"),
            ("FERROLB_POOL__NAME", "x"),
            ("FERROLB_SOMETHING_ELSE", "1"),
            ("PATH", "/bin"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let (vars, diags) = env_vars(&env);
        assert_eq!(vars.len(), 1);
        assert_eq!(vars[0].path, "log.level");
        assert_eq!(diags.len(), 2, "{diags:?}");
        assert!(
            diags[0].to_string().contains("FERROLB_LOG__LEVEL"),
            "{}",
            diags[0]
        );
        assert!(diags[1].is_error() && diags[1].message.contains("conf.d"));
    }

    #[test]
    fn secret_files_are_inspected() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let key = dir.path().join("gossip.key");
        let (m, blocks) = inspect(&key, "the gossip key", Sensitivity::Secret).unwrap();
        assert!(m.contains("does not exist") && blocks, "{m}");
        fs::write(&key, "secret").unwrap();
        fs::set_permissions(&key, fs::Permissions::from_mode(0o644)).unwrap();
        let (m, blocks) = inspect(&key, "the gossip key", Sensitivity::Secret).unwrap();
        assert!(
            m.contains("mode 0644") && m.contains("chmod 600") && blocks,
            "{m}"
        );
        fs::set_permissions(&key, fs::Permissions::from_mode(0o600)).unwrap();
        assert_eq!(inspect(&key, "the gossip key", Sensitivity::Secret), None);
        let (m, _) = inspect(dir.path(), "the gossip key", Sensitivity::Secret).unwrap();
        assert!(m.contains("not a regular file"), "{m}");
    }
}
