import pytest
from up2_classification.dataset import ImageFolderDataset, ImageListDataset
from up2_classification.metric import TopKAccuracy


def test_image_list_reads_shapes_and_generates_on_first_use(tmp_path):
    root = tmp_path / 'shapes'
    dataset = ImageListDataset(ann_file='classification/val.txt', data_root=str(root),
                               classes='classification/classes.txt',
                               prepare=dict(type='shapes', num_train=4, num_val=6,
                                            image_size=64))
    assert len(dataset) == 6 and dataset.metainfo['classes'][0] == 'circle'
    first = dataset.get_data_info(0)
    assert first['img_path'].startswith(str(root)) and 0 <= first['gt_label'] < 8


def test_malformed_list_lines_name_the_file_and_line(tmp_path):
    (tmp_path / 'list.txt').write_text('a.png 0\nb.png\n')
    with pytest.raises(ValueError, match=r'list.txt, line 2: expected'):
        ImageListDataset(ann_file='list.txt', data_root=str(tmp_path), classes=['x', 'y'])
    (tmp_path / 'list.txt').write_text('a.png 0\nb.png 7\n')
    with pytest.raises(ValueError, match=r'line 2: label 7 is outside the 2 classes'):
        ImageListDataset(ann_file='list.txt', data_root=str(tmp_path), classes=['x', 'y'])


def test_image_folder_tree(tmp_path):
    for name in ('cat', 'dog'):
        (tmp_path / 'train' / name).mkdir(parents=True)
        (tmp_path / 'train' / name / f'{name}1.jpg').write_bytes(b'')
    dataset = ImageFolderDataset(data_root=str(tmp_path), data_prefix=dict(img='train'))
    assert dataset.metainfo['classes'] == ('cat', 'dog') and len(dataset) == 2
    assert dataset.get_data_info(1)['gt_label'] == 1


def test_topk_accuracy():
    metric = TopKAccuracy(topk=(1, 2))
    metric.process(None, [dict(gt_label=1, pred_topk_labels=[1, 0]),
                          dict(gt_label=0, pred_topk_labels=[1, 0]),
                          dict(gt_label=2, pred_topk_labels=[1, 0])])
    assert metric.compute_metrics(metric.results) == {'top1': pytest.approx(100 / 3),
                                                      'top2': pytest.approx(200 / 3)}
