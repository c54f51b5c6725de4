from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models

from core import crypto
from core.models import TenantOwnedModel

DEFAULT_FALLBACK = (
    "Sorry, I don't have a good answer for that yet. Would you like to talk to a person?"
)


class Engine(models.TextChoices):
    KNOWLEDGE = "knowledge", "Knowledge base (built in, no API key)"
    OPENAI = "openai", "OpenAI-compatible chat completions"


class Bot(TenantOwnedModel):
    name = models.CharField(max_length=120)
    fallback_text = models.TextField(default=DEFAULT_FALLBACK)
    handoff_text = models.TextField(
        default="I'm connecting you with a member of our team. They'll reply here shortly."
    )
    engine = models.CharField(max_length=20, choices=Engine.choices, default=Engine.KNOWLEDGE)
    confidence_threshold = models.FloatField(
        null=True,
        blank=True,
        validators=[MinValueValidator(0.0), MaxValueValidator(1.0)],
        help_text="Answers below this confidence get the fallback. Empty: engine default.",
    )
    ai_timeout_seconds = models.PositiveSmallIntegerField(
        default=8, validators=[MinValueValidator(1), MaxValueValidator(60)]
    )
    llm_base_url = models.URLField(blank=True, help_text="e.g. https://api.openai.com/v1")
    llm_model = models.CharField(max_length=100, blank=True)
    llm_api_key_encrypted = models.TextField(blank=True, editable=False)
    # Bumped on every save or delete of one of its flow rules (bots.signals): the engine
    # keeps the active rules in memory per (bot, version) instead of querying per message.
    flow_rules_version = models.PositiveIntegerField(default=0, editable=False)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["tenant", "name"], name="bot_unique_name")]
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    def save(self, *args, **kwargs) -> None:
        # flow_rules_version moves only through bots.signals (F() + 1): saving a copy
        # loaded before a rule changed must not write the older version back.
        if not self._state.adding and kwargs.get("update_fields") is None:
            kwargs["update_fields"] = [
                f.name
                for f in self._meta.concrete_fields
                if not f.primary_key and f.name != "flow_rules_version"
            ]
        super().save(*args, **kwargs)

    @property
    def llm_api_key(self) -> str:
        return crypto.decrypt(self.llm_api_key_encrypted)

    def set_llm_api_key(self, value: str) -> None:
        self.llm_api_key_encrypted = crypto.encrypt(value)


class FlowTrigger(models.TextChoices):
    GREETING = "greeting", "Greeting (first visitor message)"
    KEYWORD = "keyword", "Keyword"
    REGEX = "regex", "Regular expression"
    BUTTON = "button", "Quick-reply button value"


class FlowAction(models.TextChoices):
    REPLY = "reply", "Reply with text"
    QUICK_REPLIES = "quick_replies", "Reply with quick-reply buttons"
    COLLECT_EMAIL = "collect_email", "Ask for the visitor's email"
    HANDOFF = "handoff", "Hand off to a human"


class FlowRule(TenantOwnedModel):
    """One "when the visitor says X, do Y" rule of a bot; rules run in `position` order."""

    bot = models.ForeignKey(Bot, on_delete=models.CASCADE, related_name="flow_rules")
    position = models.PositiveIntegerField(default=0, help_text="Lower runs first.")
    name = models.CharField(max_length=120)
    trigger = models.CharField(max_length=20, choices=FlowTrigger.choices)
    pattern = models.CharField(
        max_length=500,
        blank=True,
        help_text=(
            "Keyword: comma-separated words or phrases, matched as whole words, any case. "
            "Regex: a Python regular expression, matched anywhere, any case. "
            "Button: the exact value of the quick-reply button. Greeting: leave empty."
        ),
    )
    action = models.CharField(max_length=20, choices=FlowAction.choices)
    reply_text = models.TextField(
        blank=True,
        help_text="What the bot says. Handoff: empty uses the bot's handoff text; "
        "collect email: empty uses a default question.",
    )
    quick_replies = models.JSONField(
        default=list,
        blank=True,
        help_text='Buttons shown under the reply: [{"label": "Orders", "value": "orders"}].',
    )
    follow_up_text = models.TextField(
        blank=True,
        help_text="Collect email: the thank-you once the email is given ({email} is replaced).",
    )
    active = models.BooleanField(default=True)

    class Meta:
        ordering = ["bot", "position", "id"]
        indexes = [models.Index(fields=["bot", "active", "position"])]

    def __str__(self) -> str:
        return f"{self.name} ({self.get_trigger_display()} → {self.get_action_display()})"

    def _tenant_from_bot(self) -> None:
        if self.tenant_id is None and self.bot_id is not None:
            self.tenant_id = self.bot.tenant_id

    def clean_fields(self, exclude=None) -> None:
        self._tenant_from_bot()
        super().clean_fields(exclude=exclude)

    def clean(self) -> None:
        from bots import flows  # flows is pure and must not import models

        super().clean()
        self._tenant_from_bot()
        errors: dict[str, str] = {}
        if self.bot_id is not None and self.tenant_id != self.bot.tenant_id:
            errors["bot"] = "The bot belongs to another tenant."
        if problem := flows.pattern_problem(self.trigger, self.pattern):
            errors["pattern"] = problem
        if problem := flows.quick_replies_problem(self.quick_replies):
            errors["quick_replies"] = problem
        elif self.action == FlowAction.QUICK_REPLIES and not self.quick_replies:
            errors["quick_replies"] = "Add at least one button for a quick-replies action."
        if self.action in (FlowAction.REPLY, FlowAction.QUICK_REPLIES) and not self.reply_text:
            errors["reply_text"] = "This action needs a reply text."
        if errors:
            raise ValidationError(errors)

    def save(self, *args, **kwargs) -> None:
        self._tenant_from_bot()
        super().save(*args, **kwargs)


class KnowledgeArticle(TenantOwnedModel):
    """A help-centre article the knowledge-base engine answers from (published ones only)."""

    title = models.CharField(max_length=200)
    body = models.TextField()
    tags = models.JSONField(default=list, blank=True, help_text='e.g. ["shipping", "returns"]')
    published = models.BooleanField(default=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["tenant", "title"], name="article_unique_title")
        ]
        indexes = [models.Index(fields=["tenant", "published"])]
        ordering = ["title"]

    def __str__(self) -> str:
        return self.title

    def clean(self) -> None:
        super().clean()
        if not isinstance(self.tags, list) or not all(
            isinstance(t, str) and t.strip() for t in self.tags
        ):
            raise ValidationError({"tags": "Tags must be a list of non-empty strings."})
