from django.urls import path

from bots import views

app_name = "bots"

urlpatterns = [
    path("", views.bots, name="bots"),
    path("new/", views.bot_new, name="new"),
    path("<int:bot_id>/", views.bot_settings, name="settings"),
    path("<int:bot_id>/delete/", views.bot_delete, name="delete"),
    path("<int:bot_id>/flows/", views.flows, name="flows"),
    path("<int:bot_id>/flows/new/", views.flow_new, name="flow_new"),
    path("<int:bot_id>/flows/<int:rule_id>/", views.flow_edit, name="flow_edit"),
    path("<int:bot_id>/flows/<int:rule_id>/delete/", views.flow_delete, name="flow_delete"),
    path("<int:bot_id>/flows/<int:rule_id>/move/", views.flow_move, name="flow_move"),
    path("knowledge/", views.knowledge, name="knowledge"),
    path("knowledge/new/", views.article_new, name="article_new"),
    path("knowledge/try/", views.knowledge_try, name="knowledge_try"),
    path("knowledge/<int:article_id>/", views.article_edit, name="article_edit"),
    path("knowledge/<int:article_id>/publish/", views.article_publish, name="article_publish"),
    path("knowledge/<int:article_id>/delete/", views.article_delete, name="article_delete"),
]
