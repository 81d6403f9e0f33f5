import json

import pytest

from up2core.data.captions import CaptionDataset


def test_coco_captions_from_shapes(tmp_path):
    dataset = CaptionDataset(ann_file='annotations/captions_val.json', data_root=str(tmp_path),
                             data_prefix=dict(img='images/val'),
                             prepare=dict(type='shapes', num_train=2, num_val=5, image_size=64))
    assert len(dataset) == 5
    info = dataset.get_data_info(0)
    assert len(info['texts']) == 4 and info['img_path'].endswith('images/val/000000.png')


def test_karpathy_split_selection(tmp_path):
    images = [dict(filename=f'{i}.jpg', filepath='val2014', imgid=i,
                   split=['train', 'restval', 'val', 'test'][i % 4],
                   sentences=[dict(raw=f'caption {i} {j}') for j in range(5)]) for i in range(8)]
    (tmp_path / 'dataset_coco.json').write_text(json.dumps(dict(images=images)))
    (tmp_path / 'val2014').mkdir()
    for i in range(8):
        (tmp_path / 'val2014' / f'{i}.jpg').write_bytes(b'')
    train = CaptionDataset(ann_file='dataset_coco.json', data_root=str(tmp_path), split='train')
    test = CaptionDataset(ann_file='dataset_coco.json', data_root=str(tmp_path), split='test')
    assert len(train) == 4 and len(test) == 2  # train includes restval
    assert test.get_data_info(0)['img_path'].endswith('val2014/3.jpg')


def test_malformed_annotation_names_the_record(tmp_path):
    data = dict(images=[dict(id=1, file_name='a.png')],
                annotations=[dict(id=7, image_id=2, caption='x')])
    (tmp_path / 'caps.json').write_text(json.dumps(data))
    with pytest.raises(ValueError, match=r'caps.json: annotation #0 \(id 7\)'):
        CaptionDataset(ann_file='caps.json', data_root=str(tmp_path))
    (tmp_path / 'caps.json').write_text('{not json')
    with pytest.raises(ValueError, match='cannot be read as json'):
        CaptionDataset(ann_file='caps.json', data_root=str(tmp_path))



def test_sample_caption_keeps_num_different_captions():
    from up2core.data.captions import SampleCaption

    texts = ['a', 'b', 'c', 'd']
    for _ in range(20):
        one = SampleCaption()(dict(texts=list(texts)))['texts']
        two = SampleCaption(num=2)(dict(texts=list(texts)))['texts']
        assert len(one) == 1 and one[0] in texts
        assert len(two) == 2 and len(set(two)) == 2 and set(two) <= set(texts)
    assert sorted(SampleCaption(num=9)(dict(texts=list(texts)))['texts']) == texts
    with pytest.raises(ValueError, match='num >= 1'):
        SampleCaption(num=0)


def test_a_karpathy_file_given_for_both_splits_reads_each_its_own(tmp_path):
    """--data may name one Karpathy json for train and val: train reads train + restval, val
    reads val; a file without 'split' fields is read whole."""
    import json

    from up2core.data.captions import read_caption_file

    images = [{'filename': f'{i}.jpg', 'split': split, 'sentences': [{'raw': 'a cat.'}]}
              for i, split in enumerate(['train', 'val', 'restval', 'test'])]
    path = tmp_path / 'dataset_coco.json'
    path.write_text(json.dumps({'images': images}))
    assert [r[0] for r in read_caption_file(path, 'train')] == ['0.jpg', '2.jpg']
    assert [r[0] for r in read_caption_file(path, 'val')] == ['1.jpg']
    for image in images:
        del image['split']
    path.write_text(json.dumps({'images': images}))
    assert len(read_caption_file(path, 'val')) == 4
