"""Forms of the tenant dashboard's webchat pages: every bad input is a field error."""

from __future__ import annotations

import re

from django import forms

from bots.selectors import bot_list
from tenants.models import Tenant
from webchat.dashboard_selectors import HEX_COLOR_RE, color_contrast
from webchat.models import POW_DIFFICULTY_MAX, Position, WebChatSite
from webchat.origins import InvalidRule, validate_rules

MAX_DOMAINS = 50
MAX_DOMAIN_CHARS = 255
LOCALE_RE = re.compile(r"^[a-z]{2,3}(-[a-z0-9]{2,8})*$", re.IGNORECASE)

DOMAINS_HELP = (
    "One per line (or comma-separated). example.com allows that exact host over http or "
    "https on any port; *.example.com allows every subdomain (shop.example.com, "
    "a.b.example.com) but not example.com itself, so list both if you need both; "
    "https://shop.example.com:8443 pins scheme and port; localhost:3000 suits local "
    "development. Paths are not allowed, and a bare * (any website) is refused."
)
POW_HELP = (
    "Proof-of-work asked of each new visitor session to slow down bots: 0 turns it off; "
    "each extra bit doubles the work (16 takes a phone under a second, 20 several "
    f"seconds). At most {POW_DIFFICULTY_MAX}: more would outlast the two minutes a "
    "challenge lives."
)


def _split_domains(value: str) -> list[str]:
    return [part.strip() for part in re.split(r"[\s,]+", value or "") if part.strip()]


class DomainsField(forms.CharField):
    widget = forms.Textarea(attrs={"rows": 4, "spellcheck": "false", "autocapitalize": "off"})

    def prepare_value(self, value):
        if isinstance(value, list | tuple):
            return "\n".join(value)
        return value

    def clean(self, value) -> list[str]:
        text = super().clean(value)
        domains = _split_domains(text)
        if len(domains) > MAX_DOMAINS:
            raise forms.ValidationError(f"At most {MAX_DOMAINS} domains.")
        errors = []
        for domain in domains:
            if len(domain) > MAX_DOMAIN_CHARS:
                errors.append(f"{domain[:40]}…: longer than {MAX_DOMAIN_CHARS} characters.")
                continue
            try:
                validate_rules([domain], allow_any=False)
            except InvalidRule as exc:
                errors.append(str(exc))
        if errors:
            raise forms.ValidationError(errors)
        return validate_rules(domains, allow_any=False)


class SiteForm(forms.ModelForm):
    """Create or edit a site. `tenant` scopes the bot choices and the unique name."""

    allowed_domains = DomainsField(
        required=False, max_length=MAX_DOMAINS * (MAX_DOMAIN_CHARS + 2), help_text=DOMAINS_HELP
    )
    color = forms.CharField(
        max_length=7,
        help_text="The brand colour as #rrggbb, used for the launcher and the panel header.",
        widget=forms.TextInput(
            attrs={"pattern": "#[0-9a-fA-F]{6}", "spellcheck": "false", "size": 8}
        ),
    )
    pow_difficulty = forms.IntegerField(
        min_value=0,
        max_value=POW_DIFFICULTY_MAX,
        label="Proof-of-work difficulty",
        help_text=POW_HELP,
    )

    class Meta:
        model = WebChatSite
        fields = [
            "name",
            "bot",
            "allowed_domains",
            "title",
            "color",
            "position",
            "welcome_message",
            "launcher_text",
            "locale",
            "require_consent",
            "telemetry_enabled",
            "pow_difficulty",
            "active",
        ]
        labels = {
            "welcome_message": "Welcome message",
            "launcher_text": "Launcher label",
            "require_consent": "Ask for cookie consent before storing anything",
            "telemetry_enabled": "Send widget telemetry (load, open, errors)",
            "active": "Site is on",
            "title": "Panel title",
            "pow_difficulty": "Proof-of-work difficulty",
        }
        help_texts = {
            "bot": "Answers visitors: flows first, then the knowledge base.",
            "launcher_text": "Optional text beside the chat icon (e.g. “Questions?”).",
            "welcome_message": "Shown at the top of the panel; empty shows nothing.",
            "locale": "Language tag such as en, de or pt-BR.",
            "require_consent": "Nothing is written to the visitor's browser until your cookie "
            "banner calls ReplyBase.consent(true).",
            "active": "Off: the widget stays off every page and the API refuses the key.",
        }
        widgets = {
            "welcome_message": forms.Textarea(attrs={"rows": 2}),
            "position": forms.RadioSelect,
        }

    def __init__(self, *args, tenant: Tenant, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.tenant = tenant
        self.fields["bot"].queryset = bot_list(tenant=tenant)
        self.fields["bot"].empty_label = "— no bot —"
        self.fields["position"].choices = Position.choices
        if not self.instance.pk:
            # A new site is on (the form has no box for it: an unticked box that is not
            # drawn would save it off) and answers with the tenant's first bot.
            del self.fields["active"]
            self.fields["bot"].initial = self.fields["bot"].queryset.first()

    def clean(self) -> dict:
        cleaned = super().clean()
        active = cleaned.get("active", True) if "active" in self.fields else True
        if active and "allowed_domains" in cleaned and not cleaned["allowed_domains"]:
            self.add_error(
                "allowed_domains",
                "A site that is on needs at least one domain, or the widget shows nowhere. "
                "Add your website's domain, or turn the site off first.",
            )
        return cleaned

    def clean_name(self) -> str:
        name = " ".join(self.cleaned_data["name"].split())
        if not name:
            raise forms.ValidationError("Give the site a name.")
        taken = WebChatSite.objects.filter(tenant=self.tenant, name__iexact=name)
        if self.instance.pk:
            taken = taken.exclude(pk=self.instance.pk)
        if taken.exists():
            raise forms.ValidationError("Another site of yours already has this name.")
        return name

    def clean_color(self) -> str:
        color = self.cleaned_data["color"].strip().lower()
        if not HEX_COLOR_RE.match(color):
            raise forms.ValidationError("Enter a colour as # and six hex digits, like #2453d4.")
        return color

    def clean_title(self) -> str:
        title = " ".join(self.cleaned_data["title"].split())
        if not title:
            raise forms.ValidationError("The panel needs a title.")
        return title

    def clean_locale(self) -> str:
        locale = self.cleaned_data["locale"].strip()
        if not LOCALE_RE.match(locale):
            raise forms.ValidationError("Use a language tag such as en, de or pt-BR.")
        return locale

    def contrast(self):
        """The contrast report of the submitted (or saved) colour, for the warning."""
        if self.is_bound:
            color = self.data.get(self.add_prefix("color"), "")
        else:
            color = self.initial.get("color") or self.instance.color
        return color_contrast(str(color or ""))

    def settings(self) -> dict:
        return {name: self.cleaned_data[name] for name in self.Meta.fields if name in self.fields}


class PreviewForm(forms.Form):
    """Appearance values for the preview frame; invalid values fall back to the defaults."""

    title = forms.CharField(max_length=80, required=False)
    color = forms.CharField(max_length=7, required=False)
    position = forms.ChoiceField(choices=Position.choices, required=False)
    welcome_message = forms.CharField(max_length=500, required=False)
    launcher_text = forms.CharField(max_length=40, required=False)
    require_consent = forms.BooleanField(required=False)
    locale = forms.CharField(max_length=10, required=False)

    DEFAULTS = {
        "title": "Chat with us",
        "color": "#2453d4",
        "position": Position.RIGHT,
        "welcome_message": "",
        "launcher_text": "",
        "require_consent": False,
        "locale": "en",
    }

    def public_config(self) -> dict:
        """What the widget's `config` would return as `site` for these values."""
        values = dict(self.DEFAULTS)
        self.is_valid()  # cleaned_data then holds the valid fields only
        for name, value in self.cleaned_data.items():
            if name in ("title", "color", "locale", "position") and not value:
                continue
            values[name] = value
        if not HEX_COLOR_RE.match(str(values["color"]).strip().lower()):
            values["color"] = self.DEFAULTS["color"]
        values["telemetry"] = False
        return values


class ConfirmForm(forms.Form):
    confirm = forms.BooleanField(
        required=True,
        error_messages={"required": "Tick the box to confirm."},
    )
