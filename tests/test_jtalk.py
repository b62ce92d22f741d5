"""pyopenjtalk is loaded once, safely, however many worker threads ask for it first."""

from __future__ import annotations

import subprocess
import sys
import textwrap


def test_first_use_from_many_threads_sees_a_complete_module():
    """Eight threads asking at once all get the finished module (a fresh interpreter, no preload)."""
    code = textwrap.dedent(
        """
        import threading
        from stages.jtalk import pyopenjtalk
        barrier = threading.Barrier(8)
        results = []
        def use():
            barrier.wait()
            module = pyopenjtalk()
            results.append(callable(getattr(module, "tts", None)) and callable(getattr(module, "g2p", None)))
        threads = [threading.Thread(target=use) for _ in range(8)]
        [t.start() for t in threads]
        [t.join() for t in threads]
        print("ok" if results == [True] * 8 else f"bad {results}")
        """
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok", "the import notice must stay off stdout, and every thread must see tts/g2p"


def test_cached_analysis_gives_g2ps_kana_and_cannot_be_changed():
    """kana() is g2p(kana=True) whatever the text; a repeated text is analysed once, read-only."""
    import pytest

    from stages.jtalk import analyse, kana, pyopenjtalk

    texts = ["GitHubでコードを書く。", "「物理との関わり」、10GBのTV！", "何を使うの？ 3.5倍速い", "", "Union-Find (素集合)"]
    for text in texts:
        assert kana(text) == pyopenjtalk().g2p(text, kana=True)
    analyse.cache_clear()
    first = analyse(texts[0])
    assert analyse(texts[0]) is first
    assert analyse.cache_info().hits == 1 and analyse.cache_info().misses == 1
    assert [m["string"] for m in first] == [m["string"] for m in pyopenjtalk().run_frontend(texts[0])]
    with pytest.raises(TypeError):
        first[0]["pos"] = "名詞"  # type: ignore[index]


def test_release_memory_unmaps_the_sudachi_dictionary_and_readings_still_work():
    """After a reading fix-up mapped pyopenjtalk-plus's Sudachi dictionary, the runner's
    release_memory lets it go (the process's RSS drops), and the next g2p maps it again."""
    script = textwrap.dedent("""
        import threading
        from stages.jtalk import pyopenjtalk
        from daemon.runner import release_memory

        def rss():
            return int(open("/proc/self/statm").read().split()[1]) * 4096

        def speak(out):
            out.append(pyopenjtalk().g2p("今日は良い天気です。行った方がいい。", kana=True))

        first, again = [], []
        worker = threading.Thread(target=speak, args=(first,)); worker.start(); worker.join()
        utils = pyopenjtalk().utils
        assert utils._SUDACHI_DICTIONARY is not None, "the fix-up did not load the dictionary"
        loaded = rss()
        release_memory()
        assert utils._SUDACHI_DICTIONARY is None
        released = rss()
        worker = threading.Thread(target=speak, args=(again,)); worker.start(); worker.join()
        assert again == first
        print(loaded - released)
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert int(done.stdout.strip().splitlines()[-1]) > 20 * 1024 * 1024  # tens of MB handed back
