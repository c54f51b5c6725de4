import pytest
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction

from crm.models import Channel, Conversation


@pytest.mark.django_db
class TestChannelTyping:
    def test_web_allows_null_channel_id(self, tenant):
        conversation = Conversation.objects.create(tenant=tenant, channel=Channel.WEB)
        conversation.full_clean()
        assert conversation.channel_id is None

    @pytest.mark.parametrize("channel", ["facebook", "telegram", "whatsapp"])
    def test_database_refuses_non_web_without_channel_id(self, tenant, channel):
        with pytest.raises(IntegrityError), transaction.atomic():
            Conversation.objects.create(tenant=tenant, channel=channel, channel_id=None)
        with pytest.raises(IntegrityError), transaction.atomic():
            Conversation.objects.create(tenant=tenant, channel=channel, channel_id="")
        assert not Conversation.objects.filter(channel=channel).exists()

    def test_database_refuses_unknown_channel(self, tenant):
        with pytest.raises(IntegrityError), transaction.atomic():
            Conversation.objects.create(tenant=tenant, channel="sms", channel_id="x")

    def test_database_refuses_uppercase_channel_written_around_the_model(self, tenant):
        conversation = Conversation.objects.create(tenant=tenant, channel="WEB")
        assert conversation.channel == "web"  # save() normalizes
        with pytest.raises(IntegrityError), transaction.atomic():
            Conversation.objects.filter(pk=conversation.pk).update(channel="WEB")

    def test_non_web_with_channel_id_is_stored(self, tenant):
        conversation = Conversation.objects.create(
            tenant=tenant, channel=Channel.TELEGRAM, channel_id="chat-42"
        )
        conversation.refresh_from_db()
        assert (conversation.channel, conversation.channel_id) == ("telegram", "chat-42")

    def test_validation_explains_missing_channel_id(self, tenant):
        conversation = Conversation(tenant=tenant, channel=Channel.WHATSAPP)
        with pytest.raises(ValidationError) as caught:
            conversation.full_clean()
        assert caught.value.message_dict["channel_id"] == [
            "A whatsapp conversation needs a channel_id."
        ]

    def test_validation_normalizes_channel_to_lowercase(self, tenant):
        conversation = Conversation(tenant=tenant, channel="Web")
        conversation.full_clean()
        assert conversation.channel == "web"

    def test_validation_rejects_unknown_channel(self, tenant):
        conversation = Conversation(tenant=tenant, channel="sms", channel_id="1")
        with pytest.raises(ValidationError) as caught:
            conversation.full_clean()
        assert "Unknown channel 'sms'" in caught.value.message_dict["channel"][0]
