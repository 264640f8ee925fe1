//! Names instead of codes: an institution as its name in the page's language (the store's
//! institution table: `name`, and `name_zh` of migration 0016), a settlement window's state as
//! a word. An operator at a counter knows 工商银行, not `01020000`; the code stays beside the
//! name, small, for the telephone call with the bank.

use super::i18n::Tr;
use crate::store::OperatorStore;
use std::collections::HashMap;

/// The names of every institution, read once per page.
#[derive(Debug, Clone, Default)]
pub struct Names {
    by_id: HashMap<String, (String, Option<String>)>,
}

impl Names {
    /// The store's names; none when the store does not answer (the codes show instead).
    pub async fn load<S: OperatorStore>(store: &S) -> Self {
        match store.institution_names().await {
            Ok(all) => Self {
                by_id: all
                    .into_iter()
                    .map(|n| (n.institution_id.as_str().to_owned(), (n.name, n.name_zh)))
                    .collect(),
            },
            Err(e) => {
                tracing::warn!(error = %e, "console: institution names not read");
                Self::default()
            }
        }
    }

    /// A table of names (tests).
    pub fn of_table(rows: &[(&str, &str, Option<&str>)]) -> Self {
        Self {
            by_id: rows
                .iter()
                .map(|(id, en, zh)| ((*id).to_owned(), ((*en).to_owned(), zh.map(str::to_owned))))
                .collect(),
        }
    }

    /// `id`'s name in `tr`'s language: the Chinese name on a Chinese page when there is one,
    /// else the name; the code itself for an institution the table does not have.
    pub fn name(&self, tr: Tr, id: &str) -> String {
        match self.by_id.get(id) {
            Some((_, Some(zh))) if !tr.is_en() => zh.clone(),
            Some((name, _)) => name.clone(),
            None => id.to_owned(),
        }
    }
}

/// A settlement window's state (`open`, `closed`) as a word of the page's language.
pub fn window_state(tr: Tr, state: &str) -> String {
    tr.name("wstate", state).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::console::i18n::Lang;

    #[test]
    fn an_institution_is_named_in_the_pages_language_and_an_unknown_one_by_its_code() {
        let names = Names::of_table(&[
            (
                "01020000",
                "Industrial and Commercial Bank",
                Some("工商银行"),
            ),
            ("4101001", "Provincial People's Hospital", None),
        ]);
        let (zh, en) = (Tr(Lang::Zh), Tr(Lang::En));
        assert_eq!(names.name(zh, "01020000"), "工商银行");
        assert_eq!(names.name(en, "01020000"), "Industrial and Commercial Bank");
        assert_eq!(names.name(zh, "4101001"), "Provincial People's Hospital");
        assert_eq!(names.name(zh, "9999"), "9999");
        assert_eq!(window_state(zh, "closed"), "已关闭");
        assert_eq!(window_state(en, "open"), "open");
    }
}
