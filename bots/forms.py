"""Forms of the tenant dashboard's bot pages: bots, flow rules, knowledge articles.

Model validation (`FlowRule.clean`, `KnowledgeArticle.clean`) runs through the ModelForms,
so its messages show up as field errors. Each form is built for one tenant (or one bot of
that tenant) and never offers or accepts another tenant's objects.
"""

from __future__ import annotations

from django import forms
from django.core import validators
from django.db import transaction
from django.db.models import Max

from bots.models import Bot, FlowRule, KnowledgeArticle
from bots.selectors import bot_list
from bots.services import article_body_error
from core.text import MAX_TEXT
from tenants.models import Tenant

MAX_TAGS = 20
MAX_TAG_CHARS = 50
QUESTION_MAX_CHARS = 500


def _unique_name_error(qs, instance, field: str, value: str, message: str) -> None:
    taken = qs.filter(**{f"{field}__iexact": value})
    if instance.pk:
        taken = taken.exclude(pk=instance.pk)
    if taken.exists():
        raise forms.ValidationError(message)


# --- bots -------------------------------------------------------------------------------------


class BotForm(forms.ModelForm):
    class Meta:
        model = Bot
        fields = [
            "name",
            "fallback_text",
            "handoff_text",
            "confidence_threshold",
            "ai_timeout_seconds",
        ]
        labels = {
            "fallback_text": "Fallback answer",
            "handoff_text": "Handoff message",
            "ai_timeout_seconds": "AI timeout (seconds)",
        }
        help_texts = {
            "fallback_text": "Said when the bot has no confident answer, with a "
            "“Talk to a person” button.",
            "handoff_text": "Said when the conversation is handed to your team.",
            "confidence_threshold": "0 to 1. Answers below it get the fallback; empty uses the "
            "engine's default.",
        }
        widgets = {
            "fallback_text": forms.Textarea(attrs={"rows": 2}),
            "handoff_text": forms.Textarea(attrs={"rows": 2}),
        }

    def __init__(self, *args, tenant: Tenant, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.tenant = tenant
        self.instance.tenant = tenant

    def clean_name(self) -> str:
        name = " ".join(self.cleaned_data["name"].split())
        if not name:
            raise forms.ValidationError("Give the bot a name.")
        _unique_name_error(
            Bot.objects.filter(tenant=self.tenant),
            self.instance,
            "name",
            name,
            "Another bot of yours already has this name.",
        )
        return name


# --- flow rules -------------------------------------------------------------------------------


class QuickRepliesField(forms.CharField):
    """Buttons as lines of `Label | value` (the value defaults to the label)."""

    widget = forms.Textarea(attrs={"rows": 3, "spellcheck": "false"})

    def prepare_value(self, value):
        if isinstance(value, list):
            lines = []
            for item in value:
                if isinstance(item, dict):
                    label, val = item.get("label", ""), item.get("value", "")
                    lines.append(label if val == label else f"{label} | {val}")
            return "\n".join(lines)
        return value

    def clean(self, value) -> list[dict[str, str]]:
        text = super().clean(value) or ""
        buttons = []
        for line in text.splitlines():
            if not line.strip():
                continue
            label, sep, val = line.partition("|")
            label, val = label.strip(), val.strip()
            if not label:
                raise forms.ValidationError(f"“{line.strip()}”: the button needs a label.")
            buttons.append({"label": label, "value": val if sep and val else label})
        return buttons


class FlowRuleForm(forms.ModelForm):
    quick_replies = QuickRepliesField(
        required=False,
        max_length=2000,
        label="Quick-reply buttons",
        help_text="One per line: Label | value sent when clicked (the value defaults to the "
        "label). Shown under the reply.",
    )

    class Meta:
        model = FlowRule
        fields = [
            "name",
            "trigger",
            "pattern",
            "action",
            "reply_text",
            "quick_replies",
            "follow_up_text",
            "active",
        ]
        labels = {"follow_up_text": "Thank-you after the email", "active": "Rule is active"}
        widgets = {
            "reply_text": forms.Textarea(attrs={"rows": 3, "maxlength": MAX_TEXT}),
            "follow_up_text": forms.Textarea(attrs={"rows": 2, "maxlength": MAX_TEXT}),
            "pattern": forms.TextInput(attrs={"spellcheck": "false"}),
        }

    def __init__(self, *args, bot: Bot, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.bot = bot
        self.instance.bot = bot
        self.instance.tenant_id = bot.tenant_id
        for name in ("reply_text", "follow_up_text"):  # what a chat message can hold
            self.fields[name].max_length = MAX_TEXT
            self.fields[name].validators.append(validators.MaxLengthValidator(MAX_TEXT))

    def save(self, commit: bool = True) -> FlowRule:
        rule = super().save(commit=False)
        if rule.pk is None:
            last = FlowRule.objects.filter(tenant_id=self.bot.tenant_id, bot=self.bot).aggregate(
                m=Max("position")
            )["m"]
            rule.position = 0 if last is None else last + 1
        if commit:
            rule.save()
        return rule


class FlowMoveForm(forms.Form):
    direction = forms.ChoiceField(choices=[("up", "Up"), ("down", "Down")])

    @transaction.atomic
    def save(self, *, rule: FlowRule) -> None:
        """Swap the rule with its neighbour and renumber the bot's rules 0..n-1."""
        rules = list(
            FlowRule.objects.select_for_update()
            .filter(tenant_id=rule.tenant_id, bot_id=rule.bot_id)
            .order_by("position", "id")
        )
        index = next(i for i, r in enumerate(rules) if r.pk == rule.pk)
        other = index - 1 if self.cleaned_data["direction"] == "up" else index + 1
        if 0 <= other < len(rules):
            rules[index], rules[other] = rules[other], rules[index]
        for position, item in enumerate(rules):
            if item.position != position:
                item.position = position
                item.save(update_fields=["position", "updated_at"])


# --- knowledge articles -----------------------------------------------------------------------


class TagsField(forms.CharField):
    def prepare_value(self, value):
        if isinstance(value, list):
            return ", ".join(str(t) for t in value)
        return value

    def clean(self, value) -> list[str]:
        text = super().clean(value) or ""
        tags = list(dict.fromkeys(" ".join(t.split()) for t in text.split(",") if t.strip()))
        if len(tags) > MAX_TAGS:
            raise forms.ValidationError(f"At most {MAX_TAGS} tags.")
        if any(len(t) > MAX_TAG_CHARS for t in tags):
            raise forms.ValidationError(f"Tags are at most {MAX_TAG_CHARS} characters each.")
        return tags


class ArticleForm(forms.ModelForm):
    tags = TagsField(required=False, max_length=1200, help_text="Comma-separated, optional.")

    class Meta:
        model = KnowledgeArticle
        fields = ["title", "body", "tags", "published"]
        widgets = {"body": forms.Textarea(attrs={"rows": 12})}
        help_texts = {
            "published": "Only published articles are used to answer visitors.",
            "body": "Plain text or Markdown. Short paragraphs answer best.",
        }

    def __init__(self, *args, tenant: Tenant, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.tenant = tenant
        self.instance.tenant = tenant

    def clean_title(self) -> str:
        title = " ".join(self.cleaned_data["title"].split())
        if not title:
            raise forms.ValidationError("Give the article a title.")
        _unique_name_error(
            KnowledgeArticle.objects.filter(tenant=self.tenant),
            self.instance,
            "title",
            title,
            "Another article already has this title.",
        )
        return title

    def clean_body(self) -> str:
        body = self.cleaned_data["body"].strip()
        if not body:
            raise forms.ValidationError("The article needs some text.")
        error = article_body_error(body)
        if error:
            raise forms.ValidationError(error)
        return body


class PublishForm(forms.Form):
    published = forms.TypedChoiceField(
        choices=[("1", "Publish"), ("0", "Unpublish")], coerce=lambda v: v == "1"
    )

    def save(self, *, article: KnowledgeArticle) -> KnowledgeArticle:
        article.published = self.cleaned_data["published"]
        # updated_at moves the knowledge signature, so the answer index is rebuilt.
        article.save(update_fields=["published", "updated_at"])
        return article


class TryQuestionForm(forms.Form):
    question = forms.CharField(
        max_length=QUESTION_MAX_CHARS,
        widget=forms.TextInput(attrs={"placeholder": "e.g. How long does shipping take?"}),
    )
    bot = forms.ModelChoiceField(
        queryset=Bot.objects.none(),
        required=False,
        empty_label="Default settings",
        help_text="Whose threshold and fallback to use.",
    )

    def __init__(self, *args, tenant: Tenant, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.tenant = tenant
        bots = bot_list(tenant=tenant)
        self.fields["bot"].queryset = bots
        if not self.is_bound:
            self.fields["bot"].initial = bots.first()

    def clean_question(self) -> str:
        question = " ".join(self.cleaned_data["question"].split())
        if not question:
            raise forms.ValidationError("Type a question.")
        return question

    def chosen_bot(self) -> Bot:
        """The chosen bot, or an unsaved one of this tenant with the default settings."""
        return self.cleaned_data.get("bot") or Bot(tenant=self.tenant, name="Default settings")
