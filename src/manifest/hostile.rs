//! Manifests and sealed values built to exhaust a reader, one function per known attack, for
//! the tests that prove the limits hold (CLI, agent) and for the fuzzing seeds. Each manifest
//! crosses one limit of [`ManifestLimits::DEFAULT`](super::ManifestLimits::DEFAULT) when its
//! size argument is large enough; none needs to be committed as a file.

/// `k` aliases to a `k`-element anchor inside a Secret: k² nodes from ~7k bytes. At k = 5,000
/// (35 KB) serde_yaml alone built 25 million nodes (2.5 GB).
pub fn alias_bomb(k: usize) -> String {
    format!(
        "apiVersion: v1\nkind: Secret\nmetadata: {{name: bomb, namespace: default}}\nstringData:\n  a: &a [{}]\n  b: [{}]\n",
        vec!["x"; k].join(", "),
        vec!["*a"; k].join(", ")
    )
}

/// Flow sequences nested `levels` deep: `[[[…]]]`.
pub fn nested_sequences(levels: usize) -> String {
    format!("{}{}\n", "[".repeat(levels), "]".repeat(levels))
}

/// Flow mappings nested `levels` deep: `{a: {a: …}}`. libyaml's cost grows with the square of
/// the depth: 60,000 levels took 22 s of CPU before serde_yaml gave up.
pub fn nested_mappings(levels: usize) -> String {
    format!("{}1{}\n", "{a: ".repeat(levels), "}".repeat(levels))
}

/// Block sequences nested `levels` deep on one line: `- - - … x`.
pub fn nested_block_sequences(levels: usize) -> String {
    format!("{}x\n", "- ".repeat(levels))
}

/// `n` one-line ConfigMaps, one per document (~64 bytes each).
pub fn many_documents(n: usize) -> String {
    let mut s = String::with_capacity(n * 64);
    for i in 0..n {
        s.push_str(&format!(
            "---\napiVersion: v1\nkind: ConfigMap\nmetadata: {{name: c{i:07}, namespace: x}}\n"
        ));
    }
    s
}

/// `n` empty mappings, one per document: the most documents per byte.
pub fn many_empty_documents(n: usize) -> String {
    "---\n{}\n".repeat(n)
}

/// One flat list of `n` scalars: `n + 1` nodes at two bytes each, no alias.
pub fn wide_list(n: usize) -> String {
    let mut s = String::with_capacity(2 * n + 2);
    s.push('[');
    for i in 0..n {
        if i > 0 {
            s.push(',');
        }
        s.push('1');
    }
    s.push_str("]\n");
    s
}

/// A sealed value (raw age file) whose header holds `n` X25519-shaped stanzas, each
/// labelled with the key id `id` in a gitseal stanza with `binding` (e.g. `strict prod db
/// password`), then a MAC line and a payload: well-formed enough to reach the opener, and no
/// key needed to write it. 9,000 stanzas make ~1 MB; age's own header reader took 20 s of
/// CPU on it.
pub fn many_stanzas(n: usize, id: &str, binding: &str) -> Vec<u8> {
    use base64::Engine;
    use base64::engine::general_purpose::STANDARD_NO_PAD;
    let mut out = b"age-encryption.org/v1\n".to_vec();
    for i in 0..n {
        let share = STANDARD_NO_PAD.encode([(i % 251) as u8 + 1; 32]);
        let body = STANDARD_NO_PAD.encode([7u8; 32]);
        out.extend_from_slice(format!("-> X25519 {share}\n{body}\n").as_bytes());
    }
    let ids = vec![id; n].join(",");
    out.extend_from_slice(format!("-> gitseal {ids} {binding}\n\n").as_bytes());
    out.extend_from_slice(format!("--- {}\n", STANDARD_NO_PAD.encode([0u8; 32])).as_bytes());
    out.extend_from_slice(&[0u8; 48]);
    out
}

/// A sealed value whose one stanza has ~1 MB of body lines: few stanzas, a huge header.
pub fn huge_header() -> Vec<u8> {
    use base64::Engine;
    use base64::engine::general_purpose::STANDARD_NO_PAD;
    let mut out = b"age-encryption.org/v1\n-> X25519 AAAA\n".to_vec();
    for _ in 0..15_000 {
        out.extend_from_slice(&[b'A'; 64]);
        out.push(b'\n');
    }
    out.extend_from_slice(b"AA\n--- ");
    out.extend_from_slice(STANDARD_NO_PAD.encode([0u8; 32]).as_bytes());
    out.extend_from_slice(b"\n");
    out
}

#[cfg(test)]
mod tests {
    use super::super::{ManifestLimits, scan};
    use super::*;

    /// Each shape crosses the limit it is meant for, and only at the size that should.
    #[test]
    fn each_shape_crosses_its_limit() {
        let l = ManifestLimits::DEFAULT;
        let e = |t: String| scan("h.yaml", &t, &l).unwrap_err().problem;
        assert!(e(alias_bomb(1_000)).contains("once aliases are expanded"));
        assert!(scan("h.yaml", &alias_bomb(500), &l).is_ok());
        for shape in [nested_sequences, nested_mappings, nested_block_sequences] {
            assert!(e(shape(101)).contains("(limit: YAML nesting depth)"));
            assert!(scan("h.yaml", &shape(100), &l).is_ok());
        }
        assert!(e(many_documents(10_001)).contains("(limit: documents per file)"));
        assert!(e(many_empty_documents(10_001)).contains("(limit: documents per file)"));
        assert_eq!(
            scan("h.yaml", &many_documents(10_000), &l)
                .unwrap()
                .documents,
            10_000
        );
        assert!(e(wide_list(500_000)).contains("(limit: nodes per file)"));
        assert_eq!(
            scan("h.yaml", &wide_list(499_999), &l).unwrap().nodes,
            500_000
        );
    }
}
