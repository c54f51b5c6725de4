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

    class Meta:
        constraints = [models.UniqueConstraint(fields=["tenant", "name"], name="bot_unique_name")]
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    @property
    def llm_api_key(self) -> str:
        return crypto.decrypt(self.llm_api_key_encrypted)

    def set_llm_api_key(self, value: str) -> None:
        self.llm_api_key_encrypted = crypto.encrypt(value)
