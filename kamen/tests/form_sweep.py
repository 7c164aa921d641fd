"""The forms a page offers, read from its HTML, so a sweep can post bad input into each field
of every form the project renders (no hand-kept list of forms or fields)."""

from dataclasses import dataclass, field
from html.parser import HTMLParser
from urllib.parse import urljoin, urlsplit

SKIPPED_INPUT_TYPES = {"file", "image", "reset", "button"}


@dataclass
class Form:
    action: str
    method: str
    fields: dict = field(default_factory=dict)  # name -> list of values (what the browser sends)
    types: dict = field(default_factory=dict)  # name -> input type ("text", "textarea", "select" …)
    buttons: list = field(default_factory=list)  # (name, value) of named submit buttons
    enctype: str = ""


class _FormParser(HTMLParser):
    def __init__(self, page_path: str):
        super().__init__(convert_charrefs=True)
        self.page_path = page_path
        self.forms: list[Form] = []
        self.form: Form | None = None
        self.textarea: str | None = None
        self.select: str | None = None
        self.select_value: str | None = None

    def handle_starttag(self, tag, attrs):
        attrs = {name: value or "" for name, value in attrs}
        if tag == "form":
            action = urljoin(self.page_path, attrs.get("action") or self.page_path)
            self.form = Form(
                action=action, method=(attrs.get("method") or "get").lower(), enctype=attrs.get("enctype", "")
            )
            self.forms.append(self.form)
            return
        if self.form is None or not attrs.get("name"):
            return
        name = attrs["name"]
        if tag == "input":
            kind = attrs.get("type", "text").lower()
            if kind in SKIPPED_INPUT_TYPES:
                return
            if kind == "submit":
                self.form.buttons.append((name, attrs.get("value", "")))
            elif kind in ("checkbox", "radio"):
                if "checked" in attrs or name not in self.form.fields:
                    self.form.fields[name] = [attrs.get("value", "on")]
            else:
                self.form.fields.setdefault(name, []).append(attrs.get("value", ""))
                self.form.types[name] = kind
        elif tag == "button" and attrs.get("type", "submit").lower() == "submit":
            self.form.buttons.append((name, attrs.get("value", "")))
        elif tag == "textarea":
            self.textarea = name
            self.form.fields[name] = [""]
            self.form.types[name] = "textarea"
        elif tag == "select":
            self.select, self.select_value = name, None
        elif tag == "option" and self.select is not None:
            if self.select_value is None or "selected" in attrs:
                self.select_value = attrs.get("value", "")

    def handle_data(self, data):
        if self.textarea is not None and self.form is not None:
            self.form.fields[self.textarea][0] += data

    def handle_endtag(self, tag):
        if tag == "form":
            self.form = None
        elif tag == "textarea":
            self.textarea = None
        elif tag == "select" and self.select is not None and self.form is not None:
            self.form.fields[self.select] = [self.select_value or ""]
            self.select = None


def forms_on(page_path: str, html: str) -> list[Form]:
    """The page's forms that stay on this site."""
    parser = _FormParser(page_path)
    parser.feed(html)
    return [form for form in parser.forms if not urlsplit(form.action).netloc]


PLAUSIBLE = [
    ("password", "Sweep-pass-2026!"),
    ("phone", "13800138000"),
    ("mobile", "13800138000"),
    ("email", "sweep@example.com"),
    ("contact", "sweep@example.com"),
    ("username", "sweep-user"),
    ("slug", "sweep-store"),
    ("quantity", "1"),
    ("amount", "10.00"),
    ("price", "100.00"),
]


def plausible(name: str, kind: str) -> str:
    """A value that lets the rest of a form validate, so the bad value is what is tested (a NUL
    in a name only reached the database when the other fields were good)."""
    for part, value in PLAUSIBLE:
        if part in name.lower():
            return value
    return {"number": "1", "email": "sweep@example.com", "date": "2026-12-01"}.get(kind, "测试")


def variants(form: Form) -> list[dict]:
    """What the browser would send, empty text filled with a plausible value, with each named
    submit button in turn."""
    base = {
        name: values if any(values) or name not in form.types else [plausible(name, form.types[name])]
        for name, values in form.fields.items()
    }
    if not form.buttons:
        return [base]
    return [base | {name: [value]} for name, value in form.buttons]
