"""Topic models over the store: fit, save, list, and read back by run.

Fitting imports BERTopic (seconds); reading runs back does not, so ``fit`` loads on first use."""

from devquarry.topics.persist import latest_topic_run, theme_table, topic_runs, topic_table, topics_over_time

__all__ = ["TopicResult", "fit_topics", "latest_topic_run", "theme_table", "topic_runs", "topic_table", "topics_over_time"]


def __getattr__(name):
    if name in ("TopicResult", "fit_topics"):
        from devquarry.topics import fit

        return getattr(fit, name)
    raise AttributeError(name)
