import pytest
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command
from django.db import IntegrityError, transaction

from core.exceptions import InvalidRequest
from tenants.models import Membership, Role, Tenant
from tenants.services import (
    membership_invite,
    membership_remove,
    membership_set_role,
    tenant_create,
)
from tests.factories import MembershipFactory

BASE = "https://app.example.com/"
User = get_user_model()


@pytest.mark.django_db
class TestTenantCreate:
    def test_creates_tenant_and_owner_with_password(self):
        tenant, owner, password = tenant_create(
            name="Acme", slug="acme", plan_tier="starter", owner_email="Boss@Acme.test"
        )
        assert tenant.plan_tier == "starter"
        assert owner.email == "boss@acme.test"
        assert owner.check_password(password)
        assert Membership.objects.get(tenant=tenant, user=owner).role == Role.OWNER

    def test_duplicate_slug_is_refused(self):
        tenant_create(name="Acme", slug="acme", owner_email="a@a.test")
        with pytest.raises(InvalidRequest, match="already exists"):
            tenant_create(name="Acme 2", slug="acme", owner_email="b@a.test")
        assert Tenant.objects.count() == 1

    def test_unknown_plan_is_refused(self):
        with pytest.raises(InvalidRequest, match="Unknown plan"):
            tenant_create(name="Acme", plan_tier="gold", owner_email="a@a.test")

    def test_command_prints_owner_login(self, capsys):
        call_command(
            "create_tenant",
            "Blue Shop",
            "--slug",
            "blue",
            "--plan",
            "pro",
            "--owner-email",
            "o@blue.test",
        )
        out = capsys.readouterr().out
        assert "slug blue, plan pro" in out
        assert "Owner login: o@blue.test / " in out
        password = out.split("Owner login: o@blue.test / ")[1].strip()
        owner = Membership.objects.get(tenant__slug="blue").user
        assert owner.check_password(password)

    @pytest.mark.parametrize(
        "email",
        [
            "notanemail",
            "",
            "   ",
            "a@",
            "@b.test",
            "a b@c.test",
            "a@b@c.test",
            "x" * 150 + "@b.test",
        ],
    )
    def test_command_refuses_a_bad_owner_email_and_creates_nothing(self, email):
        with pytest.raises(CommandError, match=r"not an email address|too long for a login"):
            call_command("create_tenant", "Blue", "--owner-email", email)
        assert not Tenant.objects.exists()
        assert not User.objects.exists()

    def test_a_bad_email_is_refused_to_an_invite_too(self, tenant, owner):
        actor = Membership.objects.get(tenant=tenant, user=owner)
        with pytest.raises(InvalidRequest, match="too long for a login"):
            membership_invite(
                tenant=tenant,
                email="x" * 150 + "@b.test",
                role=Role.AGENT,
                actor_membership=actor,
                base_url=BASE,
            )
        assert Membership.objects.filter(tenant=tenant).count() == 1

    def test_command_refuses_duplicate_slug_with_clear_error(self):
        call_command("create_tenant", "Blue", "--slug", "blue", "--owner-email", "o@blue.test")
        with pytest.raises(CommandError, match="already exists"):
            call_command("create_tenant", "Blue", "--slug", "blue", "--owner-email", "o@blue.test")


@pytest.mark.django_db
class TestMemberships:
    def test_one_membership_per_user_and_tenant(self, tenant, agent):
        with pytest.raises(IntegrityError), transaction.atomic():
            Membership.objects.create(tenant=tenant, user=agent, role=Role.VIEWER)

    @pytest.mark.parametrize(
        ("role", "minimum", "expected"),
        [
            (Role.VIEWER, Role.VIEWER, True),
            (Role.VIEWER, Role.AGENT, False),
            (Role.AGENT, Role.AGENT, True),
            (Role.AGENT, Role.ADMIN, False),
            (Role.ADMIN, Role.ADMIN, True),
            (Role.ADMIN, Role.OWNER, False),
            (Role.OWNER, Role.ADMIN, True),
        ],
    )
    def test_role_ranks(self, role, minimum, expected):
        assert Membership(role=role).has_role(minimum) is expected

    def test_last_owner_cannot_be_demoted_or_removed(self, tenant):
        only_owner = MembershipFactory(tenant=tenant, role=Role.OWNER)
        with pytest.raises(InvalidRequest, match="at least one owner"):
            membership_set_role(membership=only_owner, role=Role.ADMIN, actor_membership=only_owner)
        with pytest.raises(InvalidRequest, match="at least one owner"):
            membership_remove(membership=only_owner, actor_membership=only_owner)
        only_owner.refresh_from_db()
        assert only_owner.role == Role.OWNER

    def test_admin_cannot_promote_to_owner(self, tenant):
        admin = MembershipFactory(tenant=tenant, role=Role.ADMIN)
        agent = MembershipFactory(tenant=tenant, role=Role.AGENT)
        with pytest.raises(InvalidRequest, match="Only an owner"):
            membership_set_role(membership=agent, role=Role.OWNER, actor_membership=admin)

    def test_invite_twice_is_refused(self, tenant):
        admin = MembershipFactory(tenant=tenant, role=Role.ADMIN)
        membership_invite(
            tenant=tenant,
            email="new@x.test",
            role=Role.AGENT,
            actor_membership=admin,
            base_url=BASE,
        )
        with pytest.raises(InvalidRequest, match="already a member"):
            membership_invite(
                tenant=tenant,
                email="NEW@x.test",
                role=Role.VIEWER,
                actor_membership=admin,
                base_url=BASE,
            )

    def test_only_an_owner_invites_an_owner(self, tenant, other_tenant):
        admin = MembershipFactory(tenant=tenant, role=Role.ADMIN)
        with pytest.raises(InvalidRequest, match="Only an owner"):
            membership_invite(
                tenant=tenant,
                email="alt@x.test",
                role=Role.OWNER,
                actor_membership=admin,
                base_url=BASE,
            )
        assert not Membership.objects.filter(tenant=tenant, user__email="alt@x.test").exists()
        owner = MembershipFactory(tenant=tenant, role=Role.OWNER)
        made = membership_invite(
            tenant=tenant,
            email="co@x.test",
            role=Role.OWNER,
            actor_membership=owner,
            base_url=BASE,
        )
        assert made.role == Role.OWNER
        stranger = MembershipFactory(tenant=other_tenant, role=Role.OWNER)
        with pytest.raises(InvalidRequest, match="not a member"):
            membership_invite(
                tenant=tenant,
                email="x@x.test",
                role=Role.AGENT,
                actor_membership=stranger,
                base_url=BASE,
            )
