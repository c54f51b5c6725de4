"""Tenant dashboard pages for bots, their flow rules and the knowledge base (`/bots/`).

Viewers read everything; agents may also use the "try a question" box (it writes nothing);
admins and owners create, edit, reorder, publish and delete. Another tenant's bot, rule or
article is a 404.
"""

from __future__ import annotations

from django.contrib import messages
from django.core.paginator import Paginator
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils.http import urlencode
from django.views.decorators.http import require_POST

from bots.forms import (
    ArticleForm,
    BotForm,
    FlowMoveForm,
    FlowRuleForm,
    PublishForm,
    TryQuestionForm,
)
from bots.models import Bot, FlowRule, KnowledgeArticle
from bots.selectors import bot_list, knowledge_article_get, knowledge_article_list
from bots.services import answer_question
from tenants.access import tenant_view
from tenants.models import Role


def _can_manage(request) -> bool:
    return request.membership.has_role(Role.ADMIN)


def _bot(request, bot_id: int) -> Bot:
    return get_object_or_404(Bot, tenant=request.tenant, pk=bot_id)


def _rule(request, bot: Bot, rule_id: int) -> FlowRule:
    return get_object_or_404(FlowRule, tenant=request.tenant, bot=bot, pk=rule_id)


def _disable(form) -> None:
    for field in form.fields.values():
        field.disabled = True


# --- bots -------------------------------------------------------------------------------------


@tenant_view()
def bots(request):
    return render(
        request,
        "bots/bot_list.html",
        {"bots": bot_list(tenant=request.tenant), "can_manage": _can_manage(request)},
    )


@tenant_view(read=Role.ADMIN, write=Role.ADMIN)
def bot_new(request):
    form = BotForm(request.POST or None, tenant=request.tenant)
    if request.method == "POST" and form.is_valid():
        bot = form.save()
        messages.success(
            request,
            f"Created {bot.name}. Add flow rules, or let it answer from the knowledge base.",
        )
        return redirect("bots:flows", bot_id=bot.pk)
    return render(request, "bots/bot_form.html", {"form": form, "bot": None, "can_manage": True})


@tenant_view(read=Role.VIEWER, write=Role.ADMIN)
def bot_settings(request, bot_id: int):
    bot = _bot(request, bot_id)
    form = BotForm(request.POST or None, instance=bot, tenant=request.tenant)
    if request.method == "POST" and form.is_valid():
        form.save()
        messages.success(request, "Bot saved.")
        return redirect("bots:settings", bot_id=bot.pk)
    if not _can_manage(request):
        _disable(form)
    return render(
        request,
        "bots/bot_form.html",
        {"form": form, "bot": bot, "can_manage": _can_manage(request), "tab": "settings"},
    )


@tenant_view(write=Role.ADMIN)
@require_POST
def bot_delete(request, bot_id: int):
    bot = _bot(request, bot_id)
    name = bot.name
    bot.delete()
    messages.success(request, f"Deleted {name}. Sites that used it now have no bot.")
    return redirect("bots:bots")


# --- flow rules -------------------------------------------------------------------------------


@tenant_view()
def flows(request, bot_id: int):
    bot = _bot(request, bot_id)
    rules = FlowRule.objects.filter(tenant=request.tenant, bot=bot).order_by("position", "id")
    return render(
        request,
        "bots/flows.html",
        {"bot": bot, "rules": list(rules), "can_manage": _can_manage(request), "tab": "flows"},
    )


def _flow_form_page(request, bot: Bot, form, rule=None):
    if not _can_manage(request):
        _disable(form)
    return render(
        request,
        "bots/flow_form.html",
        {
            "bot": bot,
            "rule": rule,
            "form": form,
            "can_manage": _can_manage(request),
            "tab": "flows",
        },
    )


@tenant_view(read=Role.ADMIN, write=Role.ADMIN)
def flow_new(request, bot_id: int):
    bot = _bot(request, bot_id)
    form = FlowRuleForm(request.POST or None, bot=bot)
    if request.method == "POST" and form.is_valid():
        rule = form.save()
        messages.success(request, f"Added “{rule.name}”.")
        return redirect("bots:flows", bot_id=bot.pk)
    return _flow_form_page(request, bot, form)


@tenant_view(read=Role.VIEWER, write=Role.ADMIN)
def flow_edit(request, bot_id: int, rule_id: int):
    bot = _bot(request, bot_id)
    rule = _rule(request, bot, rule_id)
    form = FlowRuleForm(request.POST or None, instance=rule, bot=bot)
    if request.method == "POST" and form.is_valid():
        form.save()
        messages.success(request, f"Saved “{rule.name}”.")
        return redirect("bots:flows", bot_id=bot.pk)
    return _flow_form_page(request, bot, form, rule)


@tenant_view(write=Role.ADMIN)
@require_POST
def flow_delete(request, bot_id: int, rule_id: int):
    bot = _bot(request, bot_id)
    rule = _rule(request, bot, rule_id)
    rule.delete()
    messages.success(request, f"Deleted “{rule.name}”.")
    return redirect("bots:flows", bot_id=bot.pk)


@tenant_view(write=Role.ADMIN)
@require_POST
def flow_move(request, bot_id: int, rule_id: int):
    bot = _bot(request, bot_id)
    rule = _rule(request, bot, rule_id)
    form = FlowMoveForm(request.POST)
    if form.is_valid():
        form.save(rule=rule)
    else:
        messages.error(request, "Move a rule up or down.")
    return redirect("bots:flows", bot_id=bot.pk)


# --- knowledge base ---------------------------------------------------------------------------

PUBLISHED_FILTERS = {"published": True, "drafts": False}


def _knowledge_page(request, *, try_form=None, result=None, status: int = 200):
    search = request.GET.get("q", "").strip()[:200]  # NULs: DropNulFromQueryMiddleware
    shown = request.GET.get("show", "")
    if shown not in PUBLISHED_FILTERS:
        shown = ""
    articles = knowledge_article_list(
        tenant=request.tenant, search=search or None, published=PUBLISHED_FILTERS.get(shown)
    )
    page = Paginator(articles, 50).get_page(request.GET.get("page"))
    return render(
        request,
        "bots/knowledge.html",
        {
            "page": page,
            "q": search,
            "show": shown,
            "filter_query": urlencode({"q": search, "show": shown}),
            "try_form": try_form or TryQuestionForm(tenant=request.tenant),
            "result": result,
            "can_manage": _can_manage(request),
            "can_try": request.membership.has_role(Role.AGENT),
        },
        status=status,
    )


@tenant_view()
def knowledge(request):
    return _knowledge_page(request)


@tenant_view(read=Role.ADMIN, write=Role.ADMIN)
def article_new(request):
    form = ArticleForm(request.POST or None, tenant=request.tenant, initial={"published": True})
    if request.method == "POST" and form.is_valid():
        article = form.save()
        messages.success(request, f"Created “{article.title}”.")
        return redirect("bots:knowledge")
    return render(
        request, "bots/article_form.html", {"form": form, "article": None, "can_manage": True}
    )


@tenant_view(read=Role.VIEWER, write=Role.ADMIN)
def article_edit(request, article_id: int):
    article = knowledge_article_get(tenant=request.tenant, article_id=article_id)
    form = ArticleForm(request.POST or None, instance=article, tenant=request.tenant)
    if request.method == "POST" and form.is_valid():
        form.save()
        messages.success(request, f"Saved “{article.title}”.")
        return redirect("bots:knowledge")
    if not _can_manage(request):
        _disable(form)
    return render(
        request,
        "bots/article_form.html",
        {"form": form, "article": article, "can_manage": _can_manage(request)},
    )


@tenant_view(write=Role.ADMIN)
@require_POST
def article_publish(request, article_id: int):
    article = knowledge_article_get(tenant=request.tenant, article_id=article_id)
    form = PublishForm(request.POST)
    if form.is_valid():
        form.save(article=article)
        verb = "Published" if article.published else "Unpublished"
        messages.success(request, f"{verb} “{article.title}”.")
    else:
        messages.error(request, "Choose publish or unpublish.")
    return _back_to_knowledge(request)


def _back_to_knowledge(request):
    """Back to the list with the filters it had (only our own parameters, no open redirect)."""
    keep = {k: request.POST.get(k, "")[:200] for k in ("q", "show", "page")}
    query = urlencode({k: v for k, v in keep.items() if v})
    return redirect(reverse("bots:knowledge") + (f"?{query}" if query else ""))


@tenant_view(write=Role.ADMIN)
@require_POST
def article_delete(request, article_id: int):
    article = knowledge_article_get(tenant=request.tenant, article_id=article_id)
    article.delete()
    messages.success(request, f"Deleted “{article.title}”.")
    return _back_to_knowledge(request)


@tenant_view(read=Role.AGENT, write=Role.AGENT)
@require_POST
def knowledge_try(request):
    """Answer a test question from this tenant's published articles (writes nothing)."""
    form = TryQuestionForm(request.POST, tenant=request.tenant)
    result = None
    if form.is_valid():
        reply = answer_question(bot=form.chosen_bot(), question=form.cleaned_data["question"])
        # Titles come from this tenant's rows only, in the engine's order.
        found = {
            a.pk: a
            for a in KnowledgeArticle.objects.filter(
                tenant=request.tenant, pk__in=[i for i in reply.article_ids if isinstance(i, int)]
            )
        }
        result = {
            "question": form.cleaned_data["question"],
            "reply": reply,
            "articles": [found[i] for i in reply.article_ids if i in found],
        }
    if request.headers.get("HX-Request"):
        return render(request, "bots/_try_result.html", {"try_form": form, "result": result})
    return _knowledge_page(request, try_form=form, result=result)
