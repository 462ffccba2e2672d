"""Exercise checkers for self-study: `check_NN_exercise_K(...)` says "correct" or what is still wrong.

Each lesson's exercise cell ends with a call to its checker. A checker tests the learner's answer
(values, shapes, or a function run on hidden cases) against the lesson's ideas without printing the
answer itself. It never raises on an unfinished answer (None, NotImplementedError, a wrong shape):
it prints what is missing and returns False, so a starter notebook still runs top to bottom.
Plots and discussion questions have no checker; the solutions notebooks show them.
"""

from mobilevlm_mini.exercises.lesson00 import (
    check_00_exercise_1,
    check_00_exercise_2,
    check_00_exercise_3,
    check_00_exercise_4,
)
from mobilevlm_mini.exercises.lesson01 import (
    check_01_exercise_1,
    check_01_exercise_2,
    check_01_exercise_3,
    check_01_exercise_4,
)
from mobilevlm_mini.exercises.lesson02 import (
    check_02_exercise_1,
    check_02_exercise_2,
    check_02_exercise_3,
    check_02_exercise_4,
)
from mobilevlm_mini.exercises.lesson03 import (
    check_03_exercise_1,
    check_03_exercise_2,
    check_03_exercise_3,
    check_03_exercise_4,
)
from mobilevlm_mini.exercises.lesson04 import (
    check_04_exercise_1,
    check_04_exercise_2,
    check_04_exercise_3,
    check_04_exercise_4,
)
from mobilevlm_mini.exercises.lesson05 import check_05_exercise_1, check_05_exercise_2, check_05_exercise_3
from mobilevlm_mini.exercises.lesson06 import check_06_exercise_1, check_06_exercise_2, check_06_exercise_3
from mobilevlm_mini.exercises.lesson07 import check_07_exercise_1, check_07_exercise_2
from mobilevlm_mini.exercises.lesson08 import check_08_exercise_1
from mobilevlm_mini.exercises.lesson09 import check_09_exercise_1, check_09_exercise_2, check_09_exercise_3
from mobilevlm_mini.exercises.lesson10 import check_10_exercise_2
from mobilevlm_mini.exercises.lesson11 import check_11_exercise_1, check_11_exercise_2
from mobilevlm_mini.exercises.lesson12 import check_12_exercise_2, check_12_exercise_4
from mobilevlm_mini.exercises.lesson13 import (
    check_13_exercise_1,
    check_13_exercise_2,
    check_13_exercise_3,
    check_13_exercise_4,
)

__all__ = [  # what notebooks import: `from mobilevlm_mini.exercises import check_NN_exercise_K`
    "check_00_exercise_1", "check_00_exercise_2", "check_00_exercise_3", "check_00_exercise_4",
    "check_01_exercise_1", "check_01_exercise_2", "check_01_exercise_3", "check_01_exercise_4",
    "check_02_exercise_1", "check_02_exercise_2", "check_02_exercise_3", "check_02_exercise_4",
    "check_03_exercise_1", "check_03_exercise_2", "check_03_exercise_3", "check_03_exercise_4",
    "check_04_exercise_1", "check_04_exercise_2", "check_04_exercise_3", "check_04_exercise_4",
    "check_05_exercise_1", "check_05_exercise_2", "check_05_exercise_3",
    "check_06_exercise_1", "check_06_exercise_2", "check_06_exercise_3",
    "check_07_exercise_1", "check_07_exercise_2",
    "check_08_exercise_1",
    "check_09_exercise_1", "check_09_exercise_2", "check_09_exercise_3",
    "check_10_exercise_2",
    "check_11_exercise_1", "check_11_exercise_2",
    "check_12_exercise_2", "check_12_exercise_4",
    "check_13_exercise_1", "check_13_exercise_2", "check_13_exercise_3", "check_13_exercise_4",
]
