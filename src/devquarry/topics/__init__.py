"""Topic models over the store: fit, save, list, and read back by run.

Fitting needs scikit-learn only (BERTopic only with the ``[bertopic]`` extra, for its model of the
run); ``fit`` still loads on first use, so reading runs back stays quick."""

from devquarry.topics.persist import latest_topic_run, theme_table, topic_runs, topic_table, topics_over_time

__all__ = ["TopicResult", "fit_topics", "latest_topic_run", "theme_table", "topic_runs", "topic_table", "topics_over_time"]


def __getattr__(name):
    if name in ("TopicResult", "fit_topics"):
        from devquarry.topics import fit

        return getattr(fit, name)
    raise AttributeError(name)
