//! Drive's `fields` masks and the subset of its query language (`q`)
//! pagerd uses.

use super::*;

/// A parsed `fields` parameter: names, each with an optional sub-mask.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Mask(Vec<(String, Option<Mask>)>);

pub(super) fn parse_mask(s: &str) -> Result<Mask, ()> {
    fn items(chars: &[char], pos: &mut usize) -> Result<Mask, ()> {
        let mut out = Vec::new();
        let done = |out| Ok(Mask(out));
        loop {
            let start = *pos;
            while *pos < chars.len() && !matches!(chars[*pos], ',' | '(' | ')') {
                *pos += 1;
            }
            let name: String = chars[start..*pos]
                .iter()
                .collect::<String>()
                .trim()
                .to_string();
            if name.is_empty() {
                return Err(());
            }
            let mut sub = None;
            if chars.get(*pos) == Some(&'(') {
                *pos += 1;
                sub = Some(items(chars, pos)?);
                if chars.get(*pos) != Some(&')') {
                    return Err(());
                }
                *pos += 1;
            }
            out.push((name, sub));
            match chars.get(*pos) {
                Some(',') => *pos += 1,
                _ => return done(out),
            }
        }
    }
    let chars: Vec<char> = s.chars().collect();
    let mut pos = 0;
    let mask = items(&chars, &mut pos)?;
    if pos != chars.len() {
        return Err(());
    }
    Ok(mask)
}

pub(super) fn apply_mask(v: &Value, mask: &Mask) -> Value {
    match v {
        Value::Array(a) => Value::Array(a.iter().map(|x| apply_mask(x, mask)).collect()),
        Value::Object(o) => {
            if mask.0.iter().any(|(n, _)| n == "*") {
                return v.clone();
            }
            let mut out = Map::new();
            for (name, sub) in &mask.0 {
                if let Some(x) = o.get(name) {
                    out.insert(
                        name.clone(),
                        sub.as_ref().map_or_else(|| x.clone(), |m| apply_mask(x, m)),
                    );
                }
            }
            Value::Object(out)
        }
        other => other.clone(),
    }
}

/// Applies the request's `fields`, or Drive's default for this resource.
pub(super) fn select(v: Value, query: &HashMap<String, String>, default: &str) -> Response {
    let fields = query
        .get("fields")
        .map(String::as_str)
        .filter(|f| !f.is_empty())
        .unwrap_or(default);
    match parse_mask(fields) {
        Ok(mask) => axum::Json(apply_mask(&v, &mask)).into_response(),
        Err(()) => gerr(
            400,
            "INVALID_ARGUMENT",
            &format!("Invalid field selection {fields}"),
            "invalidParameter",
        ),
    }
}

pub(super) const FILE_DEFAULT: &str = "kind,id,name,mimeType";
pub(super) const LIST_DEFAULT: &str = "kind,incompleteSearch,files(kind,id,name,mimeType)";
pub(super) const PERMISSION_DEFAULT: &str = "kind,id,type,role";
pub(super) const PERMISSION_LIST_DEFAULT: &str = "kind,permissions(kind,id,type,role)";

// ----------------------------------------------------------- Drive query

#[derive(Debug, Clone, PartialEq)]
pub(super) enum Term {
    AppProperty(String, String),
    Trashed(bool),
    Name { op: String, value: String },
    MimeType { equal: bool, value: String },
    InParents(String),
}

#[derive(Debug, Clone, PartialEq)]
pub(super) enum Tok {
    Word(String),
    Str(String),
    Sym(String),
}

pub(super) fn tokenize(q: &str) -> Result<Vec<Tok>, ()> {
    let chars: Vec<char> = q.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c.is_whitespace() {
            i += 1;
        } else if c == '\'' {
            let mut s = String::new();
            i += 1;
            loop {
                match chars.get(i) {
                    None => return Err(()),
                    Some('\\') => {
                        s.push(*chars.get(i + 1).ok_or(())?);
                        i += 2;
                    }
                    Some('\'') => {
                        i += 1;
                        break;
                    }
                    Some(ch) => {
                        s.push(*ch);
                        i += 1;
                    }
                }
            }
            out.push(Tok::Str(s));
        } else if c == '!' && chars.get(i + 1) == Some(&'=') {
            out.push(Tok::Sym("!=".into()));
            i += 2;
        } else if matches!(c, '=' | '{' | '}') {
            out.push(Tok::Sym(c.to_string()));
            i += 1;
        } else if c.is_ascii_alphabetic() {
            let start = i;
            while i < chars.len() && (chars[i].is_ascii_alphanumeric() || chars[i] == '_') {
                i += 1;
            }
            out.push(Tok::Word(chars[start..i].iter().collect()));
        } else {
            return Err(());
        }
    }
    Ok(out)
}

pub(super) fn parse_query(q: &str) -> Result<Vec<Term>, ()> {
    let toks = tokenize(q)?;
    let mut i = 0;
    let word = |i: &mut usize, w: &str| -> Result<(), ()> {
        match toks.get(*i) {
            Some(Tok::Word(x)) if x.eq_ignore_ascii_case(w) => {
                *i += 1;
                Ok(())
            }
            _ => Err(()),
        }
    };
    let sym = |i: &mut usize, s: &str| -> Result<(), ()> {
        match toks.get(*i) {
            Some(Tok::Sym(x)) if x == s => {
                *i += 1;
                Ok(())
            }
            _ => Err(()),
        }
    };
    let string = |i: &mut usize| -> Result<String, ()> {
        match toks.get(*i) {
            Some(Tok::Str(s)) => {
                *i += 1;
                Ok(s.clone())
            }
            _ => Err(()),
        }
    };
    let mut terms = Vec::new();
    loop {
        let term = match toks.get(i) {
            Some(Tok::Word(w)) if w == "appProperties" => {
                i += 1;
                word(&mut i, "has")?;
                sym(&mut i, "{")?;
                word(&mut i, "key")?;
                sym(&mut i, "=")?;
                let k = string(&mut i)?;
                word(&mut i, "and")?;
                word(&mut i, "value")?;
                sym(&mut i, "=")?;
                let v = string(&mut i)?;
                sym(&mut i, "}")?;
                Term::AppProperty(k, v)
            }
            Some(Tok::Word(w)) if w == "trashed" => {
                i += 1;
                let equal = sym(&mut i, "=").is_ok() || (sym(&mut i, "!=").map(|_| false)?);
                let b = match toks.get(i) {
                    Some(Tok::Word(x)) if x == "true" => true,
                    Some(Tok::Word(x)) if x == "false" => false,
                    _ => return Err(()),
                };
                i += 1;
                Term::Trashed(if equal { b } else { !b })
            }
            Some(Tok::Word(w)) if w == "name" => {
                i += 1;
                let op = match toks.get(i) {
                    Some(Tok::Sym(s)) if s == "=" || s == "!=" => s.clone(),
                    Some(Tok::Word(s)) if s == "contains" => s.clone(),
                    _ => return Err(()),
                };
                i += 1;
                Term::Name {
                    op,
                    value: string(&mut i)?,
                }
            }
            Some(Tok::Word(w)) if w == "mimeType" => {
                i += 1;
                let equal = sym(&mut i, "=").is_ok() || (sym(&mut i, "!=").map(|_| false)?);
                Term::MimeType {
                    equal,
                    value: string(&mut i)?,
                }
            }
            Some(Tok::Str(s)) => {
                let id = s.clone();
                i += 1;
                word(&mut i, "in")?;
                word(&mut i, "parents")?;
                Term::InParents(id)
            }
            _ => return Err(()),
        };
        terms.push(term);
        if i == toks.len() {
            return Ok(terms);
        }
        word(&mut i, "and")?;
    }
}

pub(super) fn matches(f: &File, term: &Term) -> bool {
    match term {
        Term::AppProperty(k, v) => f.app_properties.get(k) == Some(v),
        Term::Trashed(t) => f.trashed == *t,
        Term::Name { op, value } => match op.as_str() {
            "=" => &f.name == value,
            "!=" => &f.name != value,
            _ => f.name.contains(value.as_str()),
        },
        Term::MimeType { equal, value } => (&f.mime_type == value) == *equal,
        Term::InParents(id) => f.parents.contains(id),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queries_parse_like_drive() {
        let t = parse_query(
            "appProperties has { key='pagerd_key' and value='inc-1\\'x' } and trashed=false",
        )
        .unwrap();
        assert_eq!(
            t,
            vec![
                Term::AppProperty("pagerd_key".into(), "inc-1'x".into()),
                Term::Trashed(false)
            ]
        );
        assert_eq!(
            parse_query("'f1' in parents and trashed != true").unwrap(),
            vec![Term::InParents("f1".into()), Term::Trashed(false)]
        );
        assert!(parse_query("appProperties has { key='a' }").is_err());
        assert!(parse_query("name = 'x' or name = 'y'").is_err());
    }

    #[test]
    fn field_masks_select() {
        let v = json!({"kind":"k","files":[{"id":"1","name":"n","webViewLink":"w"}]});
        let m = parse_mask("files(id,webViewLink)").unwrap();
        assert_eq!(
            apply_mask(&v, &m),
            json!({"files":[{"id":"1","webViewLink":"w"}]})
        );
        assert!(parse_mask("files(id").is_err());
    }
}
