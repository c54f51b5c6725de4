from django.apps import AppConfig


class RolloutConfig(AppConfig):
    name = "rollout"
    default_auto_field = "django.db.models.BigAutoField"
    verbose_name = "Webchat rollout"

    def ready(self) -> None:
        from rollout import metrics

        metrics.register()
