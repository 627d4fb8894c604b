"""Topic models over the store: fit, save, list, and read back by run."""

from devquarry.topics.fit import TopicResult, fit_topics
from devquarry.topics.persist import latest_topic_run, theme_table, topic_runs, topic_table, topics_over_time

__all__ = ["TopicResult", "fit_topics", "latest_topic_run", "theme_table", "topic_runs", "topic_table", "topics_over_time"]
