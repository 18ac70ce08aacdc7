//! Limits on reading manifests, checked by a cheap pre-scan before the expensive parse.
//!
//! Manifests come from whoever can commit to a repository, so a file may be built to make the
//! reader burn memory or CPU: aliases that expand quadratically (`b: [*a, *a, …]` over a long
//! `a: &a [...]`), flow collections nested tens of thousands deep, hundreds of thousands of
//! tiny documents. Before serde_yaml builds anything, [`scan`] walks the YAML event stream and
//! counts documents, nesting and nodes, charging every alias the size of the subtree it stands
//! for. It stops at the first limit crossed, so its own cost is bounded by the limits too.
//!
//! The events come from the libyaml that serde_yaml runs on ([`super::yaml_events`]), so the
//! scan sees exactly the documents and nodes serde_yaml will. (The
//! YAML 1.2 parsers `saphyr-parser` and `yaml-rust2` were tried first: inside flow collections
//! they never give up on a possible implicit key, so they buffer a whole `[...]` or JSON
//! document as tokens before the first event — 1.4 GB for an 8 MB flat list.)
//!
//! Aliases are allowed (Kubernetes' own YAML reader accepts them, so a repository that
//! `kubectl apply` takes must work here too), but an alias costs as many nodes as it expands
//! to: the node limit bounds the tree serde_yaml builds, however the nodes came about.

use std::collections::HashMap;

use super::yaml_events::{Event, Events, Mark, SyntaxError};

use super::{Document, ManifestError, parse_checked};

/// Largest manifest file (a Kubernetes object is at most ~1.5 MiB in etcd).
pub const MAX_FILE_BYTES: usize = 8 << 20;
/// Most YAML documents in one file; `kind: List` items count one each.
pub const MAX_FILE_DOCUMENTS: usize = 10_000;
/// Most YAML nodes (scalars, sequences, mappings) in one file, aliases expanded. Parsed, a
/// node costs 190–360 bytes (measured: a flat list is the worst), so this bounds a file's
/// tree to about 180 MB. Committed files stay far below: CRD bundles hold one node per ~50
/// bytes (8 MiB ≈ 160,000 nodes); only a file of ~4,000 Deployments would reach it, and
/// such streams come from kustomize, which counts against the pass limits instead.
pub const MAX_FILE_NODES: usize = 500_000;
/// Deepest nesting of sequences and mappings. The parser behind serde_yaml gives up at 128
/// anyway, but only after reading the whole document; the deepest CRD schemas reach ~35.
pub const MAX_DEPTH: usize = 100;
/// Most bytes of manifests read in one pass of the agent.
pub const MAX_PASS_BYTES: usize = 128 << 20;
/// Most documents (objects) in one pass: twice the 50,000 objects one source is built for.
pub const MAX_PASS_DOCUMENTS: usize = 100_000;
/// Most YAML nodes in one pass, aliases expanded: 100 per object for 50,000 objects.
pub const MAX_PASS_NODES: usize = 5_000_000;

/// The limits, as one value the agent fills from its flags. `Default` is the constants.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ManifestLimits {
    pub file_bytes: usize,
    pub file_documents: usize,
    pub file_nodes: usize,
    pub depth: usize,
    pub pass_bytes: usize,
    pub pass_documents: usize,
    pub pass_nodes: usize,
}

impl ManifestLimits {
    pub const DEFAULT: ManifestLimits = ManifestLimits {
        file_bytes: MAX_FILE_BYTES,
        file_documents: MAX_FILE_DOCUMENTS,
        file_nodes: MAX_FILE_NODES,
        depth: MAX_DEPTH,
        pass_bytes: MAX_PASS_BYTES,
        pass_documents: MAX_PASS_DOCUMENTS,
        pass_nodes: MAX_PASS_NODES,
    };
}

impl Default for ManifestLimits {
    fn default() -> Self {
        ManifestLimits::DEFAULT
    }
}

/// Whether a cap is the file's own or what is left of the pass's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scope {
    File,
    Pass,
}

/// One cap: the most allowed, and the limit it reports when crossed.
#[derive(Debug, Clone, Copy)]
struct Cap {
    max: usize,
    /// The configured limit (for a pass cap, the pass total; `max` is what is left of it).
    limit: usize,
    scope: Scope,
}

impl Cap {
    fn file(max: usize) -> Cap {
        Cap {
            max,
            limit: max,
            scope: Scope::File,
        }
    }
    /// The smaller of a file cap and what is left of a pass cap.
    fn within(file: Option<usize>, pass_limit: usize, pass_used: usize) -> Cap {
        let left = pass_limit.saturating_sub(pass_used);
        match file {
            Some(f) if f <= left => Cap::file(f),
            _ => Cap {
                max: left,
                limit: pass_limit,
                scope: Scope::Pass,
            },
        }
    }
}

/// What the scan of one file is held to.
#[derive(Debug, Clone, Copy)]
struct Caps {
    bytes: Cap,
    documents: Cap,
    nodes: Cap,
    depth: usize,
}

impl Caps {
    fn file(l: &ManifestLimits) -> Caps {
        Caps {
            bytes: Cap::file(l.file_bytes),
            documents: Cap::file(l.file_documents),
            nodes: Cap::file(l.file_nodes),
            depth: l.depth,
        }
    }
}

/// What a scan found in a text that is within its limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ScanSummary {
    /// YAML documents in the stream, empty ones included.
    pub documents: usize,
    /// Nodes once aliases are expanded: what serde_yaml will build.
    pub nodes: usize,
}

/// Checks `text` against the per-file limits without building anything.
pub fn scan(
    source: &str,
    text: &str,
    limits: &ManifestLimits,
) -> Result<ScanSummary, ManifestError> {
    scan_caps(source, text, &Caps::file(limits))
}

/// Parses one file within `limits` (per-file limits only).
pub(super) fn parse_limited(
    source: &str,
    text: &str,
    limits: &ManifestLimits,
) -> Result<Vec<Document>, ManifestError> {
    parse_caps(source, text, &Caps::file(limits)).map(|(docs, _)| docs)
}

fn parse_caps(
    source: &str,
    text: &str,
    caps: &Caps,
) -> Result<(Vec<Document>, ScanSummary), ManifestError> {
    let summary = scan_caps(source, text, caps)?;
    let docs = parse_checked(source, text)?;
    if docs.len() > caps.documents.max {
        // `kind: List` items are objects too.
        return Err(too_many_documents(source, docs.len(), caps.documents, true));
    }
    Ok((docs, summary))
}

/// The running totals of one agent pass, checked against the pass limits as each file or
/// kustomize output is read, so a pass stops at the file that crosses a limit.
#[derive(Debug, Clone)]
pub struct PassBudget {
    limits: ManifestLimits,
    bytes: usize,
    documents: usize,
    nodes: usize,
}

impl PassBudget {
    pub fn new(limits: ManifestLimits) -> PassBudget {
        PassBudget {
            limits,
            bytes: 0,
            documents: 0,
            nodes: 0,
        }
    }

    pub fn limits(&self) -> &ManifestLimits {
        &self.limits
    }
    /// Bytes read so far in this pass.
    pub fn bytes(&self) -> usize {
        self.bytes
    }
    /// Documents (objects) read so far in this pass.
    pub fn documents(&self) -> usize {
        self.documents
    }
    /// Nodes read so far in this pass, aliases expanded.
    pub fn nodes(&self) -> usize {
        self.nodes
    }

    /// Whether a file of `len` bytes may be read at all: call it with the file's size before
    /// reading it.
    pub fn check_size(&self, source: &str, len: u64) -> Result<(), ManifestError> {
        let len = usize::try_from(len).unwrap_or(usize::MAX);
        check_bytes(source, len, self.file_caps().bytes)
    }

    /// Parses one manifest file: the per-file limits apply, and its bytes, documents and
    /// nodes count against the pass.
    pub fn parse_file(&mut self, source: &str, text: &str) -> Result<Vec<Document>, ManifestError> {
        let caps = self.file_caps();
        self.parse(source, text, &caps)
    }

    /// Parses a stream that stands for a whole render, such as `kustomize build` output:
    /// only the pass limits (and the nesting depth) apply to it.
    pub fn parse_stream(
        &mut self,
        source: &str,
        text: &str,
    ) -> Result<Vec<Document>, ManifestError> {
        let l = &self.limits;
        let caps = Caps {
            bytes: Cap::within(None, l.pass_bytes, self.bytes),
            documents: Cap::within(None, l.pass_documents, self.documents),
            nodes: Cap::within(None, l.pass_nodes, self.nodes),
            depth: l.depth,
        };
        self.parse(source, text, &caps)
    }

    fn file_caps(&self) -> Caps {
        let l = &self.limits;
        Caps {
            bytes: Cap::within(Some(l.file_bytes), l.pass_bytes, self.bytes),
            documents: Cap::within(Some(l.file_documents), l.pass_documents, self.documents),
            nodes: Cap::within(Some(l.file_nodes), l.pass_nodes, self.nodes),
            depth: l.depth,
        }
    }

    fn parse(
        &mut self,
        source: &str,
        text: &str,
        caps: &Caps,
    ) -> Result<Vec<Document>, ManifestError> {
        let (docs, summary) = parse_caps(source, text, caps)?;
        self.bytes += text.len();
        self.documents += docs.len();
        self.nodes += summary.nodes;
        Ok(docs)
    }
}

fn mib(n: usize) -> String {
    if n >= 1 << 20 && n.is_multiple_of(1 << 20) {
        format!("{} MiB", n >> 20)
    } else {
        format!("{n} bytes")
    }
}

fn limit_error(source: &str, document: usize, problem: String) -> ManifestError {
    ManifestError {
        file: source.to_owned(),
        document,
        field: None,
        problem,
    }
}

fn check_bytes(source: &str, len: usize, cap: Cap) -> Result<(), ManifestError> {
    if len <= cap.max {
        return Ok(());
    }
    let problem = match cap.scope {
        Scope::File => format!(
            "{len} bytes is over the limit of {} per manifest file (limit: bytes per file); \
             Kubernetes objects are far smaller: split the file",
            mib(cap.limit)
        ),
        Scope::Pass => format!(
            "reading it would take this pass over {} of manifests (limit: bytes per pass)",
            mib(cap.limit)
        ),
    };
    Err(limit_error(source, 0, problem))
}

fn too_many_documents(source: &str, document: usize, cap: Cap, objects: bool) -> ManifestError {
    let what = if objects {
        " (List items count one each)"
    } else {
        ""
    };
    let problem = match cap.scope {
        Scope::File => format!(
            "more than {} documents in one file{what} (limit: documents per file); split the file",
            cap.limit
        ),
        Scope::Pass => format!(
            "more than {} documents in this pass{what} (limit: documents per pass)",
            cap.limit
        ),
    };
    limit_error(source, document, problem)
}

/// Per open collection: where its nodes started, its anchor, and the height below it.
struct Frame {
    anchor: Option<Vec<u8>>,
    start: usize,
    height: usize,
}

/// The scan itself: one pass over the event stream, no tree built.
struct Scanner<'a> {
    source: &'a str,
    caps: &'a Caps,
    documents: usize,
    nodes: usize,
    aliased: bool,
    stack: Vec<Frame>,
    /// Per anchor of the current document: (nodes, height) of the anchored subtree.
    anchors: HashMap<Vec<u8>, (usize, usize)>,
}

fn scan_caps(source: &str, text: &str, caps: &Caps) -> Result<ScanSummary, ManifestError> {
    check_bytes(source, text.len(), caps.bytes)?;
    let mut s = Scanner {
        source,
        caps,
        documents: 0,
        nodes: 0,
        aliased: false,
        stack: Vec::new(),
        anchors: HashMap::new(),
    };
    let mut events = Events::new(text.as_bytes());
    while let Some(event) = events.next_event() {
        match event {
            Ok((event, at)) => s.event(event, at)?,
            Err(e) => return Err(s.syntax_error(&e)),
        }
    }
    Ok(ScanSummary {
        documents: s.documents,
        nodes: s.nodes,
    })
}

impl Scanner<'_> {
    fn event(&mut self, event: Event, at: Mark) -> Result<(), ManifestError> {
        match event {
            Event::DocumentStart => {
                self.documents += 1;
                if self.documents > self.caps.documents.max {
                    return Err(too_many_documents(
                        self.source,
                        self.documents,
                        self.caps.documents,
                        false,
                    ));
                }
                // Anchors belong to their document.
                self.anchors.clear();
                self.stack.clear();
            }
            Event::Scalar { anchor } => self.node(1, 0, anchor, at)?,
            Event::Alias { anchor } => {
                // serde_yaml refuses an unknown anchor itself.
                let (nodes, height) = self.anchors.get(&anchor).copied().unwrap_or((1, 0));
                self.aliased = true;
                self.node(nodes, height, None, at)?;
            }
            Event::SequenceStart { anchor } | Event::MappingStart { anchor } => {
                if self.stack.len() >= self.caps.depth {
                    return Err(self.error(
                        at,
                        format!(
                            "nested more than {} levels deep (limit: YAML nesting depth)",
                            self.caps.depth
                        ),
                    ));
                }
                self.add_nodes(1, at)?;
                self.stack.push(Frame {
                    anchor,
                    start: self.nodes - 1,
                    height: 0,
                });
            }
            Event::CollectionEnd => {
                if let Some(frame) = self.stack.pop() {
                    let height = frame.height + 1;
                    if let Some(anchor) = frame.anchor {
                        self.anchors
                            .insert(anchor, (self.nodes - frame.start, height));
                    }
                    self.raise_parent(height);
                }
            }
            Event::Other => {}
        }
        Ok(())
    }

    /// A complete node of `nodes` nodes and `height` levels (an alias's expansion, or a
    /// scalar) under the open collections.
    fn node(
        &mut self,
        nodes: usize,
        height: usize,
        anchor: Option<Vec<u8>>,
        at: Mark,
    ) -> Result<(), ManifestError> {
        if self.stack.len() + height > self.caps.depth {
            return Err(self.error(
                at,
                format!(
                    "nested more than {} levels deep once an alias is expanded (limit: YAML nesting depth)",
                    self.caps.depth
                ),
            ));
        }
        self.add_nodes(nodes, at)?;
        if let Some(anchor) = anchor {
            self.anchors.insert(anchor, (nodes, height));
        }
        self.raise_parent(height);
        Ok(())
    }

    fn raise_parent(&mut self, height: usize) {
        if let Some(parent) = self.stack.last_mut() {
            parent.height = parent.height.max(height);
        }
    }

    fn add_nodes(&mut self, n: usize, at: Mark) -> Result<(), ManifestError> {
        self.nodes = self.nodes.saturating_add(n);
        let cap = self.caps.nodes;
        if self.nodes <= cap.max {
            return Ok(());
        }
        let how = if self.aliased {
            " once aliases are expanded"
        } else {
            ""
        };
        let problem = match cap.scope {
            Scope::File => format!(
                "more than {} YAML nodes in the file{how} (limit: nodes per file)",
                cap.limit
            ),
            Scope::Pass => format!(
                "more than {} YAML nodes in this pass{how} (limit: nodes per pass)",
                cap.limit
            ),
        };
        let hint = if self.aliased {
            "; each alias (*name) costs as much as its anchor's content"
        } else {
            "; split the file"
        };
        Err(self.error(at, format!("{problem}{hint}")))
    }

    fn error(&self, at: Mark, problem: String) -> ManifestError {
        limit_error(
            self.source,
            self.documents.max(1),
            format!("{problem}, at {at}"),
        )
    }

    /// A syntax error: libyaml's fixed description and where, never input text.
    fn syntax_error(&self, e: &SyntaxError) -> ManifestError {
        limit_error(
            self.source,
            self.documents.max(1),
            format!("not valid YAML or JSON: {} at {}", e.problem, e.mark),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn small() -> ManifestLimits {
        ManifestLimits {
            file_bytes: 1000,
            file_documents: 3,
            file_nodes: 50,
            depth: 4,
            pass_bytes: 2500,
            pass_documents: 5,
            pass_nodes: 120,
        }
    }

    fn err(text: &str, limits: &ManifestLimits) -> String {
        scan("f.yaml", text, limits).unwrap_err().to_string()
    }

    #[test]
    fn counts_documents_nodes_and_alias_expansion() {
        let l = ManifestLimits::DEFAULT;
        let s = scan("f.yaml", "a: 1\n---\n---\n[x, y]\n", &l).unwrap();
        // The empty second document is one null scalar.
        assert_eq!(
            s,
            ScanSummary {
                documents: 3,
                nodes: 7
            }
        );
        // `a` is 4 nodes (the sequence and three scalars); each alias costs 4 more.
        let s = scan("f.yaml", "a: &a [1, 2, 3]\nb: [*a, *a]\n", &l).unwrap();
        assert_eq!(s.nodes, 1 + 1 + 4 + 1 + 1 + 4 + 4);
        // Nested aliases multiply.
        let s = scan("f.yaml", "- &a [1, 1]\n- &b [*a, *a]\n- [*b, *b]\n", &l).unwrap();
        assert_eq!(s.nodes, 1 + 3 + 7 + (1 + 7 + 7));
        // An anchored scalar.
        let s = scan("f.yaml", "{a: &v x, b: *v, c: *v}\n", &l).unwrap();
        assert_eq!(s.nodes, 7);
        // Anchors are per document: a later `&a` replaces the earlier one.
        let s = scan("f.yaml", "- &a [1, 2, 3, 4]\n- &a x\n- *a\n", &l).unwrap();
        assert_eq!(s.nodes, 1 + 5 + 1 + 1);
    }

    #[test]
    fn limits_name_file_document_and_limit() {
        let l = small();
        let e = err("a: 1\n---\nb: 1\n---\nc: 1\n---\nd: 1\n", &l);
        assert_eq!(
            e,
            "f.yaml: document 4: more than 3 documents in one file (limit: documents per file); split the file"
        );
        let e = err("---\nx\n---\n[[[[[1]]]]]\n", &l);
        assert_eq!(
            e,
            "f.yaml: document 2: nested more than 4 levels deep (limit: YAML nesting depth), at line 4 column 5"
        );
        assert!(scan("f.yaml", "[[[[1]]]]\n", &l).is_ok());
        let e = err("a: &a [[[1]]]\nb: [*a]\n", &l);
        assert!(e.contains("once an alias is expanded"), "{e}");
        let e = err(&format!("[{}]\n", ["1"; 60].join(",")), &l);
        assert!(
            e.starts_with("f.yaml: document 1: more than 50 YAML nodes in the file (limit: nodes per file); split the file, at line 1 column "),
            "{e}"
        );
        let e = err(
            "a: &a [1, 2, 3, 4, 5, 6, 7, 8, 9]\nb: [*a, *a, *a, *a, *a, *a]\n",
            &l,
        );
        assert!(
            e.contains("once aliases are expanded (limit: nodes per file); each alias (*name) costs as much as its anchor's content, at line 2 column"),
            "{e}"
        );
        let e = err(&"#".repeat(1001), &l);
        assert_eq!(
            e,
            "f.yaml: 1001 bytes is over the limit of 1000 bytes per manifest file (limit: bytes per file); Kubernetes objects are far smaller: split the file"
        );
    }

    #[test]
    fn syntax_errors_do_not_quote_the_input() {
        let e = err("a: [\u{7}CANARY\n", &ManifestLimits::DEFAULT);
        assert!(
            e.starts_with("f.yaml: document 1: not valid YAML or JSON: "),
            "{e}"
        );
        assert!(!e.contains('\u{7}') && !e.contains("CANARY"), "{e}");
    }

    #[test]
    fn pass_totals_accumulate() {
        let mut pass = PassBudget::new(small());
        let two = "{a: 1}\n---\n{a: 2}\n";
        assert_eq!(pass.parse_file("a.yaml", two).unwrap().len(), 2);
        assert_eq!(pass.parse_file("b.yaml", two).unwrap().len(), 2);
        assert_eq!((pass.documents(), pass.nodes()), (4, 12));
        let e = pass.parse_file("c.yaml", two).unwrap_err().to_string();
        assert_eq!(
            e,
            "c.yaml: document 2: more than 5 documents in this pass (limit: documents per pass)"
        );
        // A failed file is not counted.
        assert_eq!(pass.documents(), 4);
        assert!(pass.check_size("d.yaml", 1000).is_ok());
        let e = pass.check_size("d.yaml", 1001).unwrap_err().to_string();
        assert!(e.contains("per manifest file"), "{e}");
        let mut pass = PassBudget::new(small());
        let big = format!("# {}\n{{a: 1}}\n", "x".repeat(900));
        pass.parse_file("e.yaml", &big).unwrap();
        pass.parse_file("f.yaml", &big).unwrap();
        let e = pass.parse_file("g.yaml", &big).unwrap_err().to_string();
        assert!(e.contains("(limit: bytes per pass)"), "{e}");
        assert_eq!(pass.bytes(), 2 * big.len());
        let e = pass
            .check_size("f.yaml", big.len() as u64)
            .unwrap_err()
            .to_string();
        assert_eq!(
            e,
            "f.yaml: reading it would take this pass over 2500 bytes of manifests (limit: bytes per pass)"
        );
    }

    #[test]
    fn streams_count_against_the_pass_only() {
        let mut pass = PassBudget::new(small());
        let five = ["{a: 1}\n"; 5].join("---\n");
        // Five documents are more than a file may hold, not more than the pass.
        pass.parse_file("x.yaml", &five).unwrap_err();
        assert_eq!(
            pass.parse_stream("kustomize build .", &five).unwrap().len(),
            5
        );
        let e = pass
            .parse_stream("kustomize build .", "{a: 1}\n")
            .unwrap_err();
        assert!(e.to_string().contains("per pass"), "{e}");
    }

    #[test]
    fn list_items_count_as_documents() {
        let l = small();
        let list = "kind: List\nitems: [{a: 1}, {a: 2}, {a: 3}, {a: 4}]\n";
        let e = parse_limited("l.yaml", list, &l).unwrap_err().to_string();
        assert!(e.contains("(List items count one each)"), "{e}");
    }
}
