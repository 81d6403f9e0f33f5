"""``up2 infer --classes known``: a finetune's names and its base's, in one list."""

import pytest

from up2core.cli.infer import known_names
from up2core.errors import UserError

CARD = {'names': {'detection': {'classes': ['arrow', 'octagon']},
                  'classification': {'classes': ['circle', 'square']}},
        'base': {'names': {'detection': {'classes': ['red circle', 'arrow', 'blue star']}}}}


def test_known_names_are_the_finetunes_then_the_bases_each_once():
    assert known_names(CARD, 'detection') == ['arrow', 'octagon', 'red circle', 'blue star']
    assert known_names(CARD, 'classification') == ['circle', 'square']
    assert known_names({'names': CARD['base']['names']}, 'detection') == \
        ['red circle', 'arrow', 'blue star']


@pytest.mark.parametrize('card, task, message', [
    (CARD, None, '--classes known needs --task'),
    (CARD, 'segmentation', 'lists no names for segmentation'),
    (None, 'detection', 'lists no names for detection')])
def test_known_names_that_cannot_be_listed_say_what_to_give(card, task, message):
    with pytest.raises(UserError, match=message):
        known_names(card, task)
