//! The manifest model: reading Secret and SealedSecret documents from YAML or JSON
//! (multi-document, `kind: List` too) with errors that name the file, document and field,
//! and writing SealedSecrets back out.

use std::collections::BTreeMap;
use std::fmt;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use secrecy::{ExposeSecret, SecretSlice};
use serde::Deserialize;
use serde_yaml::{Mapping, Value};
use zeroize::{Zeroize, Zeroizing};

use crate::scope::{Scope, printable, validate_key, validate_name, validate_namespace};

pub mod hostile;
mod limits;
// The one place with `unsafe` in the project: reading libyaml's events (see its docs).
#[allow(unsafe_code)]
mod yaml_events;
pub use limits::{
    MAX_DEPTH, MAX_FILE_BYTES, MAX_FILE_DOCUMENTS, MAX_FILE_NODES, MAX_PASS_BYTES,
    MAX_PASS_DOCUMENTS, MAX_PASS_NODES, ManifestLimits, PassBudget, ScanSummary, scan,
};

pub const API_VERSION: &str = "gitseal.dev/v1alpha1";
pub const KIND: &str = "SealedSecret";
/// kubectl's client-side apply record: it holds a copy of the whole object, values included.
const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";

/// Most values (`spec.encryptedData` keys) in one SealedSecret. Every value is one age
/// file of at least ~250 bytes, so 4,096 of them already fill most of the 1.5 MiB that
/// etcd allows one object; a real Secret has a handful. Checked before any value is
/// decoded, so a SealedSecret that breaks it costs nothing to refuse.
pub const MAX_VALUES_PER_SEALED_SECRET: usize = 4096;

/// Where in the input a problem is: file (or `-`), document (1-based) and field path.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{file}{}{}: {problem}",
    if *document > 0 { format!(": document {document}") } else { String::new() },
    field.as_ref().map(|f| format!(", field `{f}`")).unwrap_or_default())]
pub struct ManifestError {
    pub file: String,
    /// 1-based; 0 when the problem is the whole file (its size).
    pub document: usize,
    pub field: Option<String>,
    pub problem: String,
}

/// One parsed document and where it came from.
#[derive(Clone)]
pub struct Document {
    pub source: String,
    /// 1-based position in the file.
    pub index: usize,
    /// Field path prefix, e.g. `items[2].` for an entry of a `kind: List`.
    pub prefix: String,
    pub value: Value,
}

impl fmt::Debug for Document {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The value may hold plaintext: show only what the document is.
        write!(
            f,
            "Document({} #{} {}{})",
            self.source,
            self.index,
            self.prefix,
            self.kind().unwrap_or("?")
        )
    }
}

impl Document {
    pub fn error(&self, field: impl Into<String>, problem: impl Into<String>) -> ManifestError {
        let field = field.into();
        ManifestError {
            file: self.source.clone(),
            document: self.index,
            field: if field.is_empty() && self.prefix.is_empty() {
                None
            } else {
                Some(
                    format!("{}{}", self.prefix, field)
                        .trim_end_matches('.')
                        .to_owned(),
                )
            },
            problem: problem.into(),
        }
    }
    pub fn kind(&self) -> Option<&str> {
        self.value.get("kind").and_then(Value::as_str)
    }
    pub fn api_version(&self) -> Option<&str> {
        self.value.get("apiVersion").and_then(Value::as_str)
    }
    pub fn name(&self) -> Option<&str> {
        self.value
            .get("metadata")
            .and_then(|m| m.get("name"))
            .and_then(Value::as_str)
    }
    pub fn namespace(&self) -> Option<&str> {
        self.value
            .get("metadata")
            .and_then(|m| m.get("namespace"))
            .and_then(Value::as_str)
    }
    pub fn is_secret(&self) -> bool {
        self.kind() == Some("Secret") && self.api_version() == Some("v1")
    }
    pub fn is_sealed_secret(&self) -> bool {
        self.kind() == Some(KIND)
            && self
                .api_version()
                .is_some_and(|v| v.starts_with("gitseal.dev/"))
    }
}

impl Drop for Document {
    fn drop(&mut self) {
        zeroize_value(&mut self.value);
    }
}

/// Overwrites every string in a YAML tree (documents may hold plaintext values).
pub(crate) fn zeroize_value(v: &mut Value) {
    match v {
        Value::String(s) => s.zeroize(),
        Value::Sequence(seq) => seq.iter_mut().for_each(zeroize_value),
        Value::Mapping(m) => m.values_mut().for_each(zeroize_value),
        Value::Tagged(t) => zeroize_value(&mut t.value),
        _ => {}
    }
}

/// A manifest value that holds plaintext: its strings are overwritten on drop.
pub struct SensitiveValue(pub Value);

impl Drop for SensitiveValue {
    fn drop(&mut self) {
        zeroize_value(&mut self.0);
    }
}

impl fmt::Debug for SensitiveValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SensitiveValue([redacted])")
    }
}

/// Splits a YAML or JSON text into its non-empty documents; `kind: List` documents are
/// expanded into their items. The text is first checked against the default
/// [`ManifestLimits`] (size, documents, nesting, nodes with aliases expanded).
pub fn parse_documents(source: &str, text: &str) -> Result<Vec<Document>, ManifestError> {
    limits::parse_limited(source, text, &ManifestLimits::DEFAULT)
}

/// [`parse_documents`] within the per-file part of `limits`; the agent counts whole passes
/// with a [`PassBudget`].
pub fn parse_documents_with(
    source: &str,
    text: &str,
    limits: &ManifestLimits,
) -> Result<Vec<Document>, ManifestError> {
    limits::parse_limited(source, text, limits)
}

/// The parse itself, for a text the pre-scan has passed.
fn parse_checked(source: &str, text: &str) -> Result<Vec<Document>, ManifestError> {
    let mut docs = Vec::new();
    for (i, de) in serde_yaml::Deserializer::from_str(text).enumerate() {
        let index = i + 1;
        let value = Value::deserialize(de).map_err(|e| ManifestError {
            file: source.to_owned(),
            document: index,
            field: None,
            problem: format!("not valid YAML or JSON: {}", yaml_error(&e)),
        })?;
        let mut doc = Document {
            source: source.to_owned(),
            index,
            prefix: String::new(),
            value,
        };
        match &doc.value {
            Value::Null => continue,
            Value::Mapping(_) => {}
            _ => return Err(doc.error("", "expected a Kubernetes object (a mapping)")),
        }
        if doc.kind() == Some("List") || doc.kind().is_some_and(|k| k.ends_with("List")) {
            let items = match doc.value.get_mut("items").map(std::mem::take) {
                Some(Value::Sequence(items)) => items,
                None | Some(Value::Null) => Vec::new(),
                Some(_) => return Err(doc.error("items", "must be a list")),
            };
            for (j, item) in items.into_iter().enumerate() {
                let d = Document {
                    source: source.to_owned(),
                    index,
                    prefix: format!("items[{j}]."),
                    value: item,
                };
                if !matches!(d.value, Value::Mapping(_)) {
                    return Err(d.error("", "expected a Kubernetes object (a mapping)"));
                }
                docs.push(d);
            }
            continue;
        }
        docs.push(doc);
    }
    Ok(docs)
}

/// A YAML error without any excerpt of the input (which may be a secret). serde_yaml
/// quotes scalars in type errors (`invalid value: string "…"`), so any message that quotes
/// something is replaced by a description of the problem.
pub(crate) fn yaml_error(e: &serde_yaml::Error) -> String {
    let msg = e.to_string();
    let msg = msg.split(" at line").next().unwrap_or_default();
    let msg = if msg.contains(['"', '\'', '`']) || msg.starts_with("invalid") {
        "a value does not fit its YAML tag (such as !!int on text)"
    } else if msg.is_empty() {
        "syntax error"
    } else {
        msg
    };
    match e.location() {
        Some(l) => format!("{msg} at line {} column {}", l.line(), l.column()),
        None => msg.to_owned(),
    }
}

/// Labels and annotations.
pub type StringMap = BTreeMap<String, String>;

/// A Kubernetes Secret held in memory. Values are secret boxes, zeroized on drop; `Debug`
/// shows key names only.
#[derive(Default)]
pub struct Secret {
    pub name: Option<String>,
    pub namespace: Option<String>,
    pub type_: Option<String>,
    pub immutable: Option<bool>,
    pub labels: StringMap,
    pub annotations: StringMap,
    pub data: BTreeMap<String, SecretSlice<u8>>,
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Secret")
            .field("name", &self.name)
            .field("namespace", &self.namespace)
            .field("type", &self.type_)
            .field("keys", &self.data.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

pub(crate) fn str_field<'a>(
    doc: &Document,
    parent: &'a Value,
    path: &str,
    key: &str,
) -> Result<Option<&'a str>, ManifestError> {
    match parent.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(doc.error(format!("{path}{key}"), "must be a string")),
    }
}

pub(crate) fn mapping_field<'a>(
    doc: &Document,
    parent: &'a Value,
    path: &str,
    key: &str,
) -> Result<Option<&'a Mapping>, ManifestError> {
    match parent.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Mapping(m)) => Ok(Some(m)),
        Some(_) => Err(doc.error(format!("{path}{key}"), "must be a mapping")),
    }
}

pub(crate) fn string_map(
    doc: &Document,
    m: Option<&Mapping>,
    path: &str,
) -> Result<StringMap, ManifestError> {
    let mut out = StringMap::new();
    for (k, v) in m.into_iter().flatten() {
        let k = k
            .as_str()
            .ok_or_else(|| doc.error(path, "keys must be strings"))?;
        let v = v.as_str().ok_or_else(|| {
            doc.error(
                format!("{path}.{k}"),
                "must be a string (quote numbers and booleans)",
            )
        })?;
        out.insert(k.to_owned(), v.to_owned());
    }
    Ok(out)
}

/// Metadata common to both kinds.
pub(crate) struct Meta {
    pub(crate) name: Option<String>,
    pub(crate) namespace: Option<String>,
    pub(crate) labels: StringMap,
    pub(crate) annotations: StringMap,
}

pub(crate) fn read_meta(doc: &Document) -> Result<Meta, ManifestError> {
    let Some(meta) = mapping_field(doc, &doc.value, "", "metadata")? else {
        return Ok(Meta {
            name: None,
            namespace: None,
            labels: StringMap::new(),
            annotations: StringMap::new(),
        });
    };
    let meta = Value::Mapping(meta.clone());
    let name = str_field(doc, &meta, "metadata.", "name")?;
    if let Some(n) = name {
        validate_name(n).map_err(|e| doc.error("metadata.name", e.to_string()))?;
    }
    let namespace = str_field(doc, &meta, "metadata.", "namespace")?;
    if let Some(ns) = namespace {
        validate_namespace(ns).map_err(|e| doc.error("metadata.namespace", e.to_string()))?;
    }
    let labels = string_map(
        doc,
        mapping_field(doc, &meta, "metadata.", "labels")?,
        "metadata.labels",
    )?;
    let mut annotations = string_map(
        doc,
        mapping_field(doc, &meta, "metadata.", "annotations")?,
        "metadata.annotations",
    )?;
    if let Some(mut v) = annotations.remove(LAST_APPLIED) {
        v.zeroize();
    }
    Ok(Meta {
        name: name.map(str::to_owned),
        namespace: namespace.map(str::to_owned),
        labels,
        annotations,
    })
}

impl Secret {
    /// Reads a `v1/Secret` document. Server-set metadata and kubectl's last-applied
    /// annotation are dropped.
    pub fn from_document(doc: &Document) -> Result<Secret, ManifestError> {
        refuse_neighbours(doc)?;
        if !doc.is_secret() {
            return Err(wrong_kind(doc, "v1", "Secret"));
        }
        let meta = read_meta(doc)?;
        let type_ = str_field(doc, &doc.value, "", "type")?.map(str::to_owned);
        let immutable = match doc.value.get("immutable") {
            None | Some(Value::Null) => None,
            Some(Value::Bool(b)) => Some(*b),
            Some(_) => return Err(doc.error("immutable", "must be true or false")),
        };
        let mut data = BTreeMap::new();
        for (k, v) in mapping_field(doc, &doc.value, "", "data")?
            .into_iter()
            .flatten()
        {
            let key = data_key(doc, "data", k)?;
            let field = format!("data.{key}");
            let encoded = match v {
                Value::String(s) => s.as_str(),
                Value::Null => "",
                _ => return Err(doc.error(field, "must be a base64 string")),
            };
            let compact: Zeroizing<String> = Zeroizing::new(
                encoded
                    .chars()
                    .filter(|c| !c.is_ascii_whitespace())
                    .collect(),
            );
            let bytes = Zeroizing::new(B64.decode(compact.as_bytes()).map_err(|_| {
                doc.error(
                    field,
                    "is not valid base64 (use stringData for plain text values)",
                )
            })?);
            data.insert(key, SecretSlice::from(bytes.to_vec()));
        }
        for (k, v) in mapping_field(doc, &doc.value, "", "stringData")?
            .into_iter()
            .flatten()
        {
            let key = data_key(doc, "stringData", k)?;
            let value = match v {
                Value::String(s) => s.as_bytes().to_vec(),
                Value::Null => Vec::new(),
                _ => {
                    return Err(doc.error(
                        format!("stringData.{key}"),
                        "must be a string (quote numbers and booleans)",
                    ));
                }
            };
            // As in Kubernetes, stringData wins over data for the same key.
            data.insert(key, SecretSlice::from(value));
        }
        Ok(Secret {
            name: meta.name,
            namespace: meta.namespace,
            type_,
            immutable,
            labels: meta.labels,
            annotations: meta.annotations,
            data,
        })
    }

    /// The Secret as a manifest value with base64 `data` (break-glass output only).
    pub fn to_value(&self) -> SensitiveValue {
        let mut meta = Mapping::new();
        if let Some(n) = &self.name {
            meta.insert("name".into(), n.as_str().into());
        }
        if let Some(ns) = &self.namespace {
            meta.insert("namespace".into(), ns.as_str().into());
        }
        if !self.labels.is_empty() {
            meta.insert("labels".into(), map_value(&self.labels));
        }
        if !self.annotations.is_empty() {
            meta.insert("annotations".into(), map_value(&self.annotations));
        }
        let mut m = Mapping::new();
        m.insert("apiVersion".into(), "v1".into());
        m.insert("kind".into(), "Secret".into());
        m.insert("metadata".into(), Value::Mapping(meta));
        if let Some(t) = &self.type_ {
            m.insert("type".into(), t.as_str().into());
        }
        if let Some(i) = self.immutable {
            m.insert("immutable".into(), i.into());
        }
        let mut data = Mapping::new();
        for (k, v) in &self.data {
            data.insert(k.as_str().into(), B64.encode(v.expose_secret()).into());
        }
        m.insert("data".into(), Value::Mapping(data));
        SensitiveValue(Value::Mapping(m))
    }
}

/// Manifests sealed by other tools hold ciphertexts where a Secret holds values: sealing
/// them would seal the ciphertexts. Name the tool and the command that converts them.
fn refuse_neighbours(doc: &Document) -> Result<(), ManifestError> {
    use crate::import::{Neighbour, neighbour_of, sops_values_in};
    let Some(n) = neighbour_of(doc) else {
        return Ok(());
    };
    let field = match n {
        Neighbour::Bitnami => "kind".to_owned(),
        Neighbour::Sops if crate::import::sops::has_metadata(&doc.value) => "sops".to_owned(),
        Neighbour::Sops => sops_values_in(&doc.value).unwrap_or_default(),
    };
    Err(doc.error(
        field,
        format!(
            "this is {}, not a gitseal manifest: its values are that tool's ciphertexts; convert it with: {}",
            n.describe(),
            n.import_command(&doc.source)
        ),
    ))
}

pub(crate) fn wrong_kind(doc: &Document, api: &str, kind: &str) -> ManifestError {
    let found = match (doc.api_version(), doc.kind()) {
        (Some(a), Some(k)) => format!("{}/{}", printable(a), printable(k)),
        (None, Some(k)) => format!("kind {} without apiVersion", printable(k)),
        (_, None) => "no kind".to_owned(),
    };
    let field = if doc.kind() == Some(kind) {
        "apiVersion"
    } else {
        "kind"
    };
    doc.error(field, format!("expected {api} {kind}, found {found}"))
}

pub(crate) fn data_key(doc: &Document, path: &str, k: &Value) -> Result<String, ManifestError> {
    let key = match k {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        Value::Bool(b) => b.to_string(),
        _ => return Err(doc.error(path, "keys must be strings")),
    };
    validate_key(&key)
        .map_err(|e| doc.error(format!("{path}.{}", printable(&key)), e.to_string()))?;
    Ok(key)
}

fn map_value(m: &StringMap) -> Value {
    Value::Mapping(
        m.iter()
            .map(|(k, v)| (Value::from(k.as_str()), Value::from(v.as_str())))
            .collect(),
    )
}

/// The shape of the Secret a SealedSecret produces.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Template {
    pub type_: Option<String>,
    pub immutable: Option<bool>,
    pub labels: StringMap,
    pub annotations: StringMap,
}

/// A SealedSecret: public metadata plus one ciphertext per key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SealedSecret {
    pub name: String,
    pub namespace: Option<String>,
    pub scope: Scope,
    /// Labels of the SealedSecret object itself.
    pub labels: StringMap,
    /// Annotations of the SealedSecret object itself, without the scope annotation.
    pub annotations: StringMap,
    /// Ciphertexts (raw age files), by Secret key.
    pub encrypted_data: BTreeMap<String, Vec<u8>>,
    pub template: Template,
}

impl SealedSecret {
    pub fn from_document(doc: &Document) -> Result<SealedSecret, ManifestError> {
        if !doc.is_sealed_secret() {
            refuse_neighbours(doc)?;
            return Err(wrong_kind(doc, API_VERSION, KIND));
        }
        if doc.api_version() != Some(API_VERSION) {
            return Err(doc.error(
                "apiVersion",
                format!(
                    "unsupported version {}; this gitseal reads {API_VERSION}",
                    printable(doc.api_version().unwrap_or_default())
                ),
            ));
        }
        let mut meta = read_meta(doc)?;
        let name = meta
            .name
            .take()
            .ok_or_else(|| doc.error("metadata.name", "is required"))?;
        let scope = match meta.annotations.remove(Scope::ANNOTATION) {
            None => Scope::Strict,
            Some(s) => s.parse().map_err(|e: crate::scope::UnknownScope| {
                doc.error(
                    format!("metadata.annotations.{}", Scope::ANNOTATION),
                    e.to_string(),
                )
            })?,
        };
        if scope != Scope::Cluster && meta.namespace.is_none() {
            return Err(doc.error(
                "metadata.namespace",
                format!("is required for scope {scope}"),
            ));
        }
        let spec = match doc.value.get("spec") {
            Some(s @ Value::Mapping(_)) => s,
            None | Some(Value::Null) => return Err(doc.error("spec", "is required")),
            Some(_) => return Err(doc.error("spec", "must be a mapping")),
        };
        let mut encrypted_data = BTreeMap::new();
        let Some(ed) = mapping_field(doc, spec, "spec.", "encryptedData")? else {
            return Err(doc.error("spec.encryptedData", "is required"));
        };
        if ed.len() > MAX_VALUES_PER_SEALED_SECRET {
            return Err(doc.error(
                "spec.encryptedData",
                format!(
                    "holds {} values, more than gitseal's limit of {MAX_VALUES_PER_SEALED_SECRET} per SealedSecret: \
                     no real Secret comes near it, so the input is corrupted or hostile; refused before decoding any value",
                    ed.len()
                ),
            ));
        }
        for (k, v) in ed {
            let key = data_key(doc, "spec.encryptedData", k)?;
            let field = format!("spec.encryptedData.{key}");
            let s = v
                .as_str()
                .ok_or_else(|| doc.error(&field, "must be a base64 string"))?;
            let bytes = B64
                .decode(s.trim())
                .map_err(|_| doc.error(&field, "is not valid base64"))?;
            encrypted_data.insert(key, bytes);
        }
        let template = match spec.get("template") {
            None | Some(Value::Null) => Template::default(),
            Some(t @ Value::Mapping(_)) => {
                let tmeta = mapping_field(doc, t, "spec.template.", "metadata")?
                    .map(|m| Value::Mapping(m.clone()))
                    .unwrap_or(Value::Null);
                Template {
                    type_: str_field(doc, t, "spec.template.", "type")?.map(str::to_owned),
                    immutable: match t.get("immutable") {
                        None | Some(Value::Null) => None,
                        Some(Value::Bool(b)) => Some(*b),
                        Some(_) => {
                            return Err(
                                doc.error("spec.template.immutable", "must be true or false")
                            );
                        }
                    },
                    labels: string_map(
                        doc,
                        mapping_field(doc, &tmeta, "spec.template.metadata.", "labels")?,
                        "spec.template.metadata.labels",
                    )?,
                    annotations: string_map(
                        doc,
                        mapping_field(doc, &tmeta, "spec.template.metadata.", "annotations")?,
                        "spec.template.metadata.annotations",
                    )?,
                }
            }
            Some(_) => return Err(doc.error("spec.template", "must be a mapping")),
        };
        Ok(SealedSecret {
            name,
            namespace: meta.namespace,
            scope,
            labels: meta.labels,
            annotations: meta.annotations,
            encrypted_data,
            template,
        })
    }

    /// The manifest as a value (field order as `kubectl` would show it).
    pub fn to_value(&self) -> Value {
        let mut meta = Mapping::new();
        meta.insert("name".into(), self.name.as_str().into());
        if let Some(ns) = &self.namespace {
            meta.insert("namespace".into(), ns.as_str().into());
        }
        if !self.labels.is_empty() {
            meta.insert("labels".into(), map_value(&self.labels));
        }
        let mut ann = self.annotations.clone();
        ann.insert(Scope::ANNOTATION.to_owned(), self.scope.to_string());
        meta.insert("annotations".into(), map_value(&ann));

        let mut tmeta = Mapping::new();
        if !self.template.labels.is_empty() {
            tmeta.insert("labels".into(), map_value(&self.template.labels));
        }
        if !self.template.annotations.is_empty() {
            tmeta.insert("annotations".into(), map_value(&self.template.annotations));
        }
        let mut template = Mapping::new();
        template.insert(
            "type".into(),
            self.template.type_.as_deref().unwrap_or("Opaque").into(),
        );
        if let Some(i) = self.template.immutable {
            template.insert("immutable".into(), i.into());
        }
        if !tmeta.is_empty() {
            template.insert("metadata".into(), Value::Mapping(tmeta));
        }
        let encrypted: Mapping = self
            .encrypted_data
            .iter()
            .map(|(k, v)| (Value::from(k.as_str()), Value::from(B64.encode(v))))
            .collect();
        let mut spec = Mapping::new();
        spec.insert("encryptedData".into(), Value::Mapping(encrypted));
        spec.insert("template".into(), Value::Mapping(template));

        let mut m = Mapping::new();
        m.insert("apiVersion".into(), API_VERSION.into());
        m.insert("kind".into(), KIND.into());
        m.insert("metadata".into(), Value::Mapping(meta));
        m.insert("spec".into(), Value::Mapping(spec));
        Value::Mapping(m)
    }
}

/// Output format of manifests.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OutputFormat {
    #[default]
    Yaml,
    Json,
}

/// Writes documents as one YAML stream (`---` between documents) or as JSON (a single
/// object, or a `v1/List` when there are several). Temporary copies are zeroized, since
/// break-glass output holds plaintext.
pub fn render<'a>(values: impl IntoIterator<Item = &'a Value>, format: OutputFormat) -> String {
    let values: Vec<&Value> = values.into_iter().collect();
    match format {
        OutputFormat::Yaml => {
            let mut out = String::new();
            for (i, v) in values.iter().enumerate() {
                if i > 0 {
                    out.push_str("---\n");
                }
                let mut doc = serde_yaml::to_string(v).unwrap_or_default();
                out.push_str(&doc);
                doc.zeroize();
            }
            out
        }
        OutputFormat::Json => {
            let mut s = match values[..] {
                [one] => serde_json::to_string_pretty(one).unwrap_or_default(),
                _ => {
                    let mut m = Mapping::new();
                    m.insert("apiVersion".into(), "v1".into());
                    m.insert("kind".into(), "List".into());
                    m.insert(
                        "items".into(),
                        Value::Sequence(values.iter().map(|v| (*v).clone()).collect()),
                    );
                    let list = SensitiveValue(Value::Mapping(m));
                    serde_json::to_string_pretty(&list.0).unwrap_or_default()
                }
            };
            s.push('\n');
            s
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(text: &str) -> Document {
        let mut d = parse_documents("t.yaml", text).unwrap();
        assert_eq!(d.len(), 1);
        d.remove(0)
    }

    #[test]
    fn secret_from_yaml_and_json() {
        let d = one(
            "apiVersion: v1\nkind: Secret\nmetadata: {name: db, namespace: prod, uid: x, \
             annotations: {kubectl.kubernetes.io/last-applied-configuration: '{}', a: b}}\n\
             type: kubernetes.io/basic-auth\ndata: {username: YWRtaW4=}\nstringData: {password: hunter2}\n",
        );
        let s = Secret::from_document(&d).unwrap();
        assert_eq!(s.name.as_deref(), Some("db"));
        assert_eq!(s.data["username"].expose_secret(), b"admin");
        assert_eq!(s.data["password"].expose_secret(), b"hunter2");
        assert_eq!(s.annotations.len(), 1);
        assert!(!format!("{s:?}").contains("hunter2"));
        let j = one(
            r#"{"apiVersion":"v1","kind":"Secret","metadata":{"name":"x"},"data":{"k":"dg=="}}"#,
        );
        assert_eq!(
            Secret::from_document(&j).unwrap().data["k"].expose_secret(),
            b"v"
        );
    }

    #[test]
    fn errors_name_document_and_field() {
        let docs = parse_documents(
            "s.yaml",
            "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\n---\napiVersion: v1\nkind: Secret\nmetadata: {name: b}\ndata: {pw: '!!!notbase64'}\n",
        )
        .unwrap();
        let e = Secret::from_document(&docs[1]).unwrap_err().to_string();
        assert_eq!(
            e,
            "s.yaml: document 2, field `data.pw`: is not valid base64 (use stringData for plain text values)"
        );
        assert!(!e.contains("notbase64"));
        let e = Secret::from_document(&docs[0]).unwrap_err().to_string();
        assert!(
            e.contains("document 1, field `kind`: expected v1 Secret, found v1/ConfigMap"),
            "{e}"
        );
        let e = parse_documents("x.yaml", "a: !!int CANARY\n")
            .unwrap_err()
            .to_string();
        assert!(!e.contains("CANARY") && e.contains("YAML tag"), "{e}");
        let e = parse_documents("x.yaml", "a: [\n").unwrap_err().to_string();
        assert!(e.starts_with("x.yaml: document 1: not valid YAML"), "{e}");
    }

    #[test]
    fn lists_expand() {
        let docs = parse_documents(
            "l.json",
            r#"{"apiVersion":"v1","kind":"List","items":[{"apiVersion":"v1","kind":"Secret","metadata":{"name":"a"}},{"apiVersion":"v1","kind":"Secret","metadata":{"name":"b"},"data":{"x":1}}]}"#,
        )
        .unwrap();
        assert_eq!(docs.len(), 2);
        let e = Secret::from_document(&docs[1]).unwrap_err().to_string();
        assert!(e.contains("field `items[1].data.x`"), "{e}");
    }

    #[test]
    fn sealed_round_trip() {
        let mut s = SealedSecret {
            name: "db".into(),
            namespace: Some("prod".into()),
            scope: Scope::Namespace,
            labels: StringMap::new(),
            annotations: StringMap::new(),
            encrypted_data: BTreeMap::new(),
            template: Template::default(),
        };
        s.encrypted_data.insert("pw".into(), vec![1, 2, 3]);
        s.template.type_ = Some("Opaque".into());
        let text = render([&s.to_value()], OutputFormat::Yaml);
        let back = SealedSecret::from_document(&one(&text)).unwrap();
        assert_eq!(back, s);
        let text = render([&s.to_value()], OutputFormat::Json);
        assert_eq!(SealedSecret::from_document(&one(&text)).unwrap(), s);
    }
}
