from django.apps import AppConfig


class WebchatConfig(AppConfig):
    name = "webchat"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from corsheaders.signals import check_request_enabled

        from webchat import signals

        check_request_enabled.connect(signals.cors_check_request, dispatch_uid="webchat-cors")
