//! poetry.lock's `files = [...]` arrays hold most of its bytes (every wheel of every package).
//! Those of `[[package]]` tables written exactly as poetry writes them, `{file = "…", hash =
//! "…"}` entries, are read by a strict scanner and cut out before the TOML parse; any other
//! form is left to the TOML parser. The result is what a TOML parser reads, several times
//! faster.

use std::borrow::Cow;
use std::ops::Range;

use serde::Deserialize;

/// A lock text with the contents of its packages' `files = [...]` arrays removed, and what
/// those arrays hold.
pub(super) struct Reduced<'a> {
    pub original: &'a str,
    pub text: Cow<'a, str>,
    cuts: Vec<Cut<'a>>,
}

/// One removed array: where its (now empty) `[]` is in the reduced text, where it was in the
/// original, how many bytes were removed before it, and its files.
struct Cut<'a> {
    reduced_at: usize,
    original: Range<usize>,
    removed_before: usize,
    files: Vec<File<'a>>,
}

/// One `{file, hash}` entry, borrowed from the lock text when it has no escapes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct File<'a> {
    pub file: Option<Cow<'a, str>>,
    pub hash: Option<Cow<'a, str>>,
}

/// One `{file, hash}` entry as the TOML parser reads it.
#[derive(Deserialize, Clone, Debug)]
pub(super) struct TomlFile {
    file: Option<String>,
    hash: Option<String>,
}

impl TomlFile {
    pub(super) fn to_file(&self) -> File<'static> {
        File {
            file: self.file.clone().map(Cow::Owned),
            hash: self.hash.clone().map(Cow::Owned),
        }
    }
}

impl<'a> Reduced<'a> {
    /// Cuts the arrays out of `text`. A text the scanner cannot follow is left whole, for the
    /// TOML parser to read (or to reject, with its own message).
    pub(super) fn new(text: &'a str) -> Reduced<'a> {
        let arrays = match files_arrays(text) {
            Some(arrays) if !arrays.is_empty() => arrays,
            _ => return Reduced::whole(text),
        };
        let mut reduced = String::with_capacity(text.len() / 4);
        let mut cuts = Vec::with_capacity(arrays.len());
        let mut copied = 0;
        let mut removed = 0;
        for (array, files) in arrays {
            // Keep the brackets: `files = []`.
            reduced.push_str(&text[copied..=array.start]);
            let reduced_at = reduced.len() - 1;
            reduced.push(']');
            copied = array.end;
            let removing = array.len() - 2;
            cuts.push(Cut {
                reduced_at,
                original: array,
                removed_before: removed,
                files,
            });
            removed += removing;
        }
        reduced.push_str(&text[copied..]);
        Reduced {
            original: text,
            text: Cow::Owned(reduced),
            cuts,
        }
    }

    /// `text` as it is.
    pub(super) fn whole(text: &'a str) -> Reduced<'a> {
        Reduced {
            original: text,
            text: Cow::Borrowed(text),
            cuts: Vec::new(),
        }
    }

    /// The offset in the original text of `offset` in the reduced one.
    pub(super) fn original_offset(&self, offset: usize) -> usize {
        let i = self.cuts.partition_point(|c| c.reduced_at < offset);
        match i.checked_sub(1).and_then(|i| self.cuts.get(i)) {
            // The `]` left for a cut: the original array's.
            Some(cut) if offset == cut.reduced_at + 1 => cut.original.end - 1,
            Some(cut) => offset + cut.removed_before + (cut.original.len() - 2),
            None => offset,
        }
    }

    /// The files of the array whose reduced `[]` starts at `reduced_start`; None when no
    /// array was cut there.
    pub(super) fn files(&self, reduced_start: usize) -> Option<&[File<'a>]> {
        let i = self
            .cuts
            .binary_search_by_key(&reduced_start, |c| c.reduced_at)
            .ok()?;
        Some(&self.cuts.get(i)?.files)
    }
}

/// `[{file = "…", hash = "…"}, …]` at the start of `text`, exactly as poetry writes it (any
/// spacing, newlines between entries, a trailing comma): its files and length. None for
/// anything else.
fn poetry_form(text: &str) -> Option<(Vec<File<'_>>, usize)> {
    let mut s = Scanner {
        text,
        bytes: text.as_bytes(),
        at: 0,
    };
    let mut files = Vec::new();
    s.expect(b"[")?;
    loop {
        s.blank(true);
        if s.eat(b"]") {
            break;
        }
        s.expect(b"{")?;
        s.blank(false);
        let file = s.field(b"file")?;
        s.expect(b",")?;
        s.blank(false);
        let hash = s.field(b"hash")?;
        s.expect(b"}")?;
        files.push(File {
            file: Some(Cow::Borrowed(file)),
            hash: Some(Cow::Borrowed(hash)),
        });
        s.blank(true);
        if s.eat(b"]") {
            break;
        }
        s.expect(b",")?;
    }
    Some((files, s.at))
}

struct Scanner<'a> {
    text: &'a str,
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Scanner<'a> {
    fn blank(&mut self, newlines: bool) {
        while let Some(&b) = self.bytes.get(self.at) {
            if b == b' '
                || b == b'\t'
                || (newlines
                    && (b == b'\n' || b == b'\r' && self.bytes.get(self.at + 1) == Some(&b'\n')))
            {
                self.at += 1;
            } else {
                break;
            }
        }
    }

    fn eat(&mut self, token: &[u8]) -> bool {
        if self.bytes[self.at.min(self.bytes.len())..].starts_with(token) {
            self.at += token.len();
            true
        } else {
            false
        }
    }

    fn expect(&mut self, token: &[u8]) -> Option<()> {
        self.eat(token).then_some(())
    }

    /// A basic string without escapes or control characters.
    /// `key = "value"` and the blanks after it, on one line: the value.
    fn field(&mut self, key: &[u8]) -> Option<&'a str> {
        self.expect(key)?;
        self.blank(false);
        self.expect(b"=")?;
        self.blank(false);
        let value = self.string()?;
        self.blank(false);
        Some(value)
    }

    fn string(&mut self) -> Option<&'a str> {
        self.expect(b"\"")?;
        let start = self.at;
        // `find` of an ASCII character runs a fast byte search.
        let len = self.text.get(start..)?.find('"')?;
        let s = self.text.get(start..start + len)?;
        if s.bytes()
            .any(|b| b == b'\\' || (b < 0x20 && b != b'\t') || b == 0x7f)
        {
            return None;
        }
        self.at = start + len + 1;
        Some(s)
    }
}

/// The byte ranges (brackets included) and files of the `files = [...]` arrays in poetry's
/// form that are values of `[[package]]` tables: keys that start a line outside any string,
/// array or inline table, after a `[[package]]` header. None when the text ends inside a
/// string or bracket, or has a quote run TOML forbids: the TOML parser then reads it all.
fn files_arrays(text: &str) -> Option<Vec<(Range<usize>, Vec<File<'_>>)>> {
    let bytes = text.as_bytes();
    let mut arrays = Vec::new();
    let mut depth: usize = 0;
    let mut i = 0;
    let mut line_start = true;
    let mut in_package = false;
    while i < bytes.len() {
        let at_line_start = std::mem::take(&mut line_start);
        if at_line_start && depth == 0 {
            let line = text.get(i..).unwrap_or("").trim_start_matches([' ', '\t']);
            if line.starts_with('[') {
                // A table header: the next keys belong to a package's own table only after
                // `[[package]]` (a comment may follow).
                let header = line.split(['\n', '#']).next().unwrap_or("").trim_end();
                in_package = header == "[[package]]";
            } else if in_package {
                if let Some((start, files, len)) = files_key(text, i) {
                    arrays.push((start..start + len, files));
                    i = start + len;
                    continue;
                }
            }
        }
        match bytes[i] {
            b'\n' => {
                line_start = true;
                i += 1;
            }
            b'#' => {
                while i < bytes.len() && bytes[i] != b'\n' {
                    i += 1;
                }
            }
            b'"' | b'\'' => i = skip_string(bytes, i)?,
            b'[' | b'{' => {
                depth += 1;
                i += 1;
            }
            b']' | b'}' => {
                depth = depth.checked_sub(1)?;
                i += 1;
            }
            _ => i += 1,
        }
    }
    (depth == 0).then_some(arrays)
}

/// `files = [...]` in poetry's form at the line starting at `at`: where its `[` is, its files
/// and its length.
fn files_key(text: &str, at: usize) -> Option<(usize, Vec<File<'_>>, usize)> {
    let bytes = text.as_bytes();
    let skip_blank = |mut k: usize| {
        while matches!(bytes.get(k), Some(b' ' | b'\t')) {
            k += 1;
        }
        k
    };
    let key = skip_blank(at);
    if !bytes.get(key..)?.starts_with(b"files") {
        return None;
    }
    let equals = skip_blank(key + "files".len());
    if bytes.get(equals) != Some(&b'=') {
        return None;
    }
    let open = skip_blank(equals + 1);
    let (files, len) = poetry_form(text.get(open..)?)?;
    Some((open, files, len))
}

/// The offset just past the string that starts at `i` (a quote).
fn skip_string(bytes: &[u8], i: usize) -> Option<usize> {
    let quote = bytes[i];
    let basic = quote == b'"';
    let run = bytes[i..].iter().take_while(|&&b| b == quote).count();
    if run == 2 {
        // An empty string.
        return Some(i + 2);
    }
    let multiline = run >= 3;
    let mut j = if multiline { i + 3 } else { i + 1 };
    while j < bytes.len() {
        let b = bytes[j];
        if basic && b == b'\\' {
            if !multiline && bytes.get(j + 1) == Some(&b'\n') {
                // No line continuation in a one-line string: let the TOML parser say so.
                return None;
            }
            j += 2;
            continue;
        }
        if b == quote {
            if !multiline {
                return Some(j + 1);
            }
            let run = bytes[j..].iter().take_while(|&&c| c == quote).count();
            if run >= 3 {
                // Up to two quotes before the closing three belong to the string.
                return (run <= 5).then_some(j + run);
            }
            j += run;
            continue;
        }
        if b == b'\n' && !multiline {
            // An unterminated one-line string: let the TOML parser say so.
            return None;
        }
        j += 1;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(file: &str, hash: &str) -> File<'static> {
        File {
            file: Some(Cow::Owned(file.into())),
            hash: Some(Cow::Owned(hash.into())),
        }
    }

    #[test]
    fn cuts_the_files_of_package_tables() {
        let text = "[[package]]\nname = \"a\"\nfiles = [\n    {file = \"a.whl\", hash = \"sha256:00\"},\n]\n\n[package.dependencies]\nfiles = [\"<2\", \">=3\"]\n\n[[package]]\nname = \"b\"\ndescription = \"\"\"\nfiles = [ not an array ]\"\"\"\nfiles = []\n\n[extras]\nfiles = [{file = \"x\", hash = \"y\"}]\n";
        let reduced = Reduced::new(text);
        // Not cut: a dependency named `files`, text in a string, an extra named `files`.
        assert_eq!(
            reduced.text,
            "[[package]]\nname = \"a\"\nfiles = []\n\n[package.dependencies]\nfiles = [\"<2\", \">=3\"]\n\n[[package]]\nname = \"b\"\ndescription = \"\"\"\nfiles = [ not an array ]\"\"\"\nfiles = []\n\n[extras]\nfiles = [{file = \"x\", hash = \"y\"}]\n"
        );
        let at = reduced.text.find("files = []").unwrap() + "files = ".len();
        assert_eq!(reduced.files(at).unwrap(), [file("a.whl", "sha256:00")]);
        // Offsets map back to the original: the brackets, and after the cut.
        assert_eq!(
            reduced.original_offset(at),
            text.find("files = [").unwrap() + 8
        );
        assert_eq!(
            reduced.original_offset(at + 1),
            text.find("},\n]").unwrap() + 3
        );
        let deps = reduced.text.find("[package.dependencies]").unwrap();
        assert_eq!(
            reduced.original_offset(deps),
            text.find("[package.dependencies]").unwrap()
        );
    }

    #[test]
    fn other_forms_are_left_to_the_toml_parser() {
        for array in [
            "[{hash = \"h\", file = \"f\"}]",
            "[ { file = 'f', hash = \"h\" } ]",
            "[{file = \"f\\u0041\", hash = \"h\"}]",
            "[\n  # a comment\n  {file = \"f\", hash = \"h\"}\n]",
            "[{file = \"f\", hash = \"h\", size = 1}]",
        ] {
            let text = format!("[[package]]\nfiles = {array}\n");
            assert_eq!(Reduced::new(&text).text, text);
        }
        let text = "[[package]]\nfiles = [{file = \"f\", hash = \"h\"},\n {file = \"g\", hash = \"i\"} ,] # ok\n";
        let reduced = Reduced::new(text);
        assert_eq!(reduced.text, "[[package]]\nfiles = [] # ok\n");
        assert_eq!(
            reduced.files("[[package]]\nfiles = ".len()).unwrap(),
            [file("f", "h"), file("g", "i")]
        );
    }

    #[test]
    fn strings_that_look_like_brackets_are_skipped() {
        let text = "[[package]]\na = \"]\"\nb = '['\nc = \"\"\"\n]\"\"\"\"\"\nfiles = []\n";
        let ranges = |text| {
            files_arrays(text).map(|arrays| {
                arrays
                    .into_iter()
                    .map(|(r, _)| (r.start, r.end))
                    .collect::<Vec<_>>()
            })
        };
        let start = text.find("files = [").unwrap() + "files = ".len();
        assert_eq!(ranges(text), Some(vec![(start, start + 2)]));
        // An unterminated string or bracket: the TOML parser reads (and refuses) the text.
        assert_eq!(ranges("a = \"x\nfiles = []\n"), None);
        assert_eq!(ranges("a = [\n"), None);
        assert_eq!(ranges("a = \"\"\"x\"\"\"\"\"\"\n"), None);
    }
}
